"""Block Kit views of the incident lifecycle, built with ``slack_sdk`` models.

Texts come from templates (escaped); this module only arranges them into blocks and buttons.
Action ids are constants here so listeners and views cannot disagree.
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

from chat.escape import escape_mrkdwn, truncate
from incident.model import Incident
from incident.templates import mention

ACTION_ASSESS = "incident_assess"
ACTION_POST_UPDATE = "incident_post_update"
ACTION_ESCALATE = "incident_escalate"
ACTION_RESOLVE = "incident_resolve"

SEVERITY_EMOJI = {"sev1": ":red_circle:", "sev2": ":large_orange_circle:", "sev3": ":large_yellow_circle:"}


def incident_header(incident: Incident) -> list[Block]:
    """The pinned header of an incident channel, with its buttons."""
    commander = f"<@{incident.commander}>" if incident.commander else "_unassigned_"
    comms = f"<@{incident.comms}>" if incident.comms else "_unassigned_"
    return [
        HeaderBlock(text=truncate(f"{incident.severity.upper()}: {incident.title}", 150)),
        SectionBlock(fields=[
            MarkdownTextObject(text=f"*Severity*\n{SEVERITY_EMOJI.get(incident.severity, '')} {incident.severity.upper()}"),
            MarkdownTextObject(text=f"*Status*\n{incident.status.value}"),
            MarkdownTextObject(text=f"*Commander*\n{commander}"),
            MarkdownTextObject(text=f"*Comms*\n{comms}"),
        ]),
        ContextBlock(elements=[MarkdownTextObject(
            text=f"Incident `{incident.id}` · opened {incident.opened_at:%Y-%m-%d %H:%M UTC} by {mention(incident.opened_by)}"
        )]),
        ActionsBlock(block_id=f"incident_header:{incident.id}", elements=[
            ButtonElement(text="Assess", action_id=ACTION_ASSESS, value=incident.id, style="primary"),
            ButtonElement(text="Post update", action_id=ACTION_POST_UPDATE, value=incident.id),
            ButtonElement(text="Escalate", action_id=ACTION_ESCALATE, value=incident.id, style="danger"),
            ButtonElement(text="Resolve", action_id=ACTION_RESOLVE, value=incident.id),
        ]),
    ]


def header_fallback_text(incident: Incident) -> str:
    """Notification text of the header message."""
    return f"{incident.severity.upper()} incident: {escape_mrkdwn(incident.title)}"


def text_section(text: str) -> list[Block]:
    """One mrkdwn section (already-rendered, already-escaped text)."""
    return [SectionBlock(text=MarkdownTextObject(text=truncate(text, 3000)))]
