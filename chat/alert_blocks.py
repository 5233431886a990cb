"""Block Kit of the Alertmanager intake: the triage message, its decided form, the recovery prompt, the attach modal.

Texts come from ``templates/alert_*.slack.j2`` (every label value escaped, so ``<!channel>`` in a
label is text), the labels of its buttons and modal from ``templates/block_labels.txt.j2``; this module
arranges them. The triage message carries *Open incident*, *Attach to an
open incident…* and *Dismiss*, each with the alert group's id as value; once a person decided it is
replaced by what they decided, without buttons. The recovery prompt's button carries the incident id
and starts the normal ``/k8s resolve`` path. Action ids are constants here so the listeners
(``bot.alert_buttons``) and the views cannot disagree. Used by ``service.alerts``.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from chat.blocks import LABELS
from chat.escape import truncate
from incident.model import Incident
from incident.templates import TemplateRenderer

ACTION_TRIAGE_OPEN = "alert_triage_open"
ACTION_TRIAGE_ATTACH = "alert_triage_attach"
ACTION_TRIAGE_DISMISS = "alert_triage_dismiss"
ACTION_RECOVERY_CHECKLIST = "alerts_recovery_checklist"
ATTACH_MODAL_CALLBACK = "alert_attach_modal"
ATTACH_BLOCK = "incident"
ATTACH_SELECT = "choice"
MAX_OPTIONS = 100
"""Block Kit's limit of options in one static select."""


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, 3000)))


def triage_message(group_id: str, text: str, templates: TemplateRenderer) -> list[Block]:
    """The triage message: the group's alerts (rendered ``text``) and the three decisions."""
    def button(macro: str, action_id: str, style: str | None = None) -> ButtonElement:
        return ButtonElement(text=templates.macro_exact(LABELS, macro), action_id=action_id, value=group_id, style=style)

    return [
        _section(text),
        ActionsBlock(block_id=f"alert_triage:{group_id}", elements=[
            button("triage_open_button", ACTION_TRIAGE_OPEN, "primary"),
            button("triage_attach_button", ACTION_TRIAGE_ATTACH),
            button("triage_dismiss_button", ACTION_TRIAGE_DISMISS),
        ]),
    ]


def decided_message(text: str) -> list[Block]:
    """The triage message after a decision: the same alerts, what was decided, no buttons."""
    return [_section(text)]


def recovery_prompt(incident_id: str, text: str, templates: TemplateRenderer) -> list[Block]:
    """"All linked alerts resolved — run the recovery checklist?" with the button that does."""
    return [
        _section(text),
        ActionsBlock(block_id=f"alerts_recovery:{incident_id}", elements=[
            ButtonElement(text=templates.macro_exact(LABELS, "recovery_checklist_button"),
                          action_id=ACTION_RECOVERY_CHECKLIST, value=incident_id, style="primary"),
        ]),
    ]


def attach_modal(group_id: str, channel_id: str, message_ts: str, incidents: list[Incident],
                 templates: TemplateRenderer) -> View:
    """Pick the open incident to attach the group to; ``private_metadata`` says which triage message to update."""
    def text(macro: str, **arguments: Any) -> str:
        return templates.macro_exact(LABELS, macro, **arguments)

    options = [Option(value=incident.id, text=truncate(text("attach_option", incident=incident), 75))
               for incident in incidents[:MAX_OPTIONS]]
    return View(
        type="modal", callback_id=ATTACH_MODAL_CALLBACK, title=text("attach_modal_title"),
        submit=text("attach_modal_submit"), close=text("attach_modal_close"),
        private_metadata=json.dumps({"group": group_id, "channel": channel_id, "ts": message_ts}),
        blocks=[InputBlock(block_id=ATTACH_BLOCK, label=text("attach_modal_label"), element=StaticSelectElement(
            action_id=ATTACH_SELECT, placeholder=text("attach_modal_placeholder"), options=options))],
    )


def read_attach_modal(view: dict[str, Any]) -> tuple[dict[str, str], str]:
    """(the triage message's group/channel/ts, the chosen incident id) of a submitted :func:`attach_modal`."""
    try:
        where = json.loads(str(view.get("private_metadata") or "{}"))
    except json.JSONDecodeError:
        where = {}
    values = (view.get("state") or {}).get("values") or {}
    chosen = ((values.get(ATTACH_BLOCK) or {}).get(ATTACH_SELECT) or {}).get("selected_option") or {}
    return ({k: str(v) for k, v in where.items()} if isinstance(where, dict) else {}), str(chosen.get("value") or "")
