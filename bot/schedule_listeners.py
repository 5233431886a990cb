"""Listeners of the escalation prompt buttons: Escalate, Snooze 15 min, Dismiss.

Each click is acknowledged first, then read (which prompt, who, which message) and handed to
:func:`service.escalation.decide`, the same escalation path as the header's *Escalate*.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from chat.schedule_blocks import ACTION_ESCALATION_DISMISS, ACTION_ESCALATION_ESCALATE, ACTION_ESCALATION_SNOOZE, PromptRef
from incident.cadence import Decision
from incident.errors import IncidentBotError
from service import escalation
from service.context import Context

log = logging.getLogger(__name__)

DECISIONS = {
    ACTION_ESCALATION_ESCALATE: Decision.ESCALATED,
    ACTION_ESCALATION_SNOOZE: Decision.SNOOZED,
    ACTION_ESCALATION_DISMISS: Decision.DISMISSED,
}


def register_schedule_listeners(app: App, services: Context) -> None:
    """Wire the escalation prompt buttons into ``app``."""
    for action_id, decision in DECISIONS.items():
        app.action(action_id)(_listener(services, decision))


def _listener(services: Context, decision: Decision) -> Callable[..., None]:
    def listener(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        _guarded(respond, lambda: decide(services, body, decision))

    return listener


def decide(services: Context, body: dict[str, Any], decision: Decision) -> str:
    """Read the click and hand it to :func:`service.escalation.decide`; returns the ephemeral reply."""
    message = body.get("message") or {}
    return escalation.decide(
        services, _prompt_ref(body), decision, str((body.get("user") or {}).get("id", "unknown")),
        channel_id=str((body.get("channel") or {}).get("id") or "") or None,
        message_ts=str((body.get("container") or {}).get("message_ts") or message.get("ts") or "") or None,
        prompt_text=_prompt_text(message))


def _prompt_ref(body: dict[str, Any]) -> PromptRef:
    actions = body.get("actions") or []
    try:
        return PromptRef.decode(str(actions[0].get("value") or ""))
    except (IndexError, ValueError):
        raise IncidentBotError("This button carries no escalation prompt; it may come from an old message.") from None


def _prompt_text(message: dict[str, Any]) -> str:
    """The prompt's own text (its first section), to keep above the decision."""
    for block in message.get("blocks") or []:
        if block.get("type") == "section" and isinstance(block.get("text"), dict):
            return str(block["text"].get("text", ""))
    return str(message.get("text", ""))


def _guarded(respond: Respond, work: Callable[[], str]) -> None:
    """Run ``work``; its text and any error go back ephemerally (errors with a reference)."""
    try:
        text = work()
    except IncidentBotError as error:
        text = f":warning: {error.user_text()}"
    except Exception:  # noqa: BLE001 - a person clicked and waits for an answer
        reference = uuid.uuid4().hex[:8]
        log.exception("escalation decision failed (reference %s)", reference)
        text = (f":warning: Something went wrong on the bot's side (reference `{reference}`). "
                "Nothing was lost; click again, and report the reference if it persists.")
    try:
        respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception:  # noqa: BLE001 - the response_url may have expired
        log.exception("could not deliver a reply: %s", text)

