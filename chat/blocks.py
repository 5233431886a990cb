"""Block Kit views of the incident lifecycle, built with ``slack_sdk`` models.

Texts come from templates: the header's mrkdwn from ``templates/incident_header.slack.j2`` (escaped), its
title and button labels from ``templates/block_labels.txt.j2`` (plain text); this module only arranges them
into blocks and buttons. Action ids are constants here so listeners and views cannot disagree.
"""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from chat.escape import truncate
from incident.model import Incident
from incident.templates import TemplateRenderer

ACTION_ASSESS = "incident_assess"
ACTION_POST_UPDATE = "incident_post_update"
ACTION_ESCALATE = "incident_escalate"
ACTION_RESOLVE = "incident_resolve"

HEADER = "incident_header.slack.j2"
LABELS = "block_labels.txt.j2"


def incident_header(incident: Incident, templates: TemplateRenderer) -> list[Block]:
    """The pinned header of an incident channel, with its buttons."""
    def field(macro: str) -> MarkdownTextObject:
        return MarkdownTextObject(text=templates.macro_exact(HEADER, macro, incident=incident))

    def button(macro: str, action_id: str, style: str | None = None) -> ButtonElement:
        return ButtonElement(text=templates.macro_exact(LABELS, macro), action_id=action_id,
                             value=header_button_value(incident), style=style)

    return [
        HeaderBlock(text=truncate(templates.macro_exact(LABELS, "header_title", incident=incident), 150)),
        SectionBlock(fields=[field("severity"), field("status"), field("commander"), field("comms")]),
        ContextBlock(elements=[field("context")]),
        ActionsBlock(block_id=f"incident_header:{incident.id}", elements=[
            button("assess_button", ACTION_ASSESS, "primary"),
            button("post_update_button", ACTION_POST_UPDATE),
            button("escalate_button", ACTION_ESCALATE, "danger"),
            button("resolve_button", ACTION_RESOLVE),
        ]),
    ]


def header_button_value(incident: Incident) -> str:
    """What the header's buttons carry: ``<incident id>@<cluster>`` (the cluster is checked on every click)."""
    return f"{incident.id}@{incident.cluster}" if incident.cluster else incident.id


def header_fallback_text(incident: Incident, templates: TemplateRenderer) -> str:
    """Notification text of the header message."""
    return templates.macro_exact(HEADER, "fallback", incident=incident)


def text_section(text: str) -> list[Block]:
    """One mrkdwn section (already-rendered, already-escaped text)."""
    return [SectionBlock(text=MarkdownTextObject(text=truncate(text, 3000)))]
