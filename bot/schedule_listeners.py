"""Listeners of the escalation prompt buttons: Escalate, Snooze 15 min, Dismiss.

Each click is acknowledged first; after the ack (on the post-ack pool, through the app's one wrapper) it is
read — which prompt, who, which message — and handed to :func:`service.escalation.decide`, the same
escalation path as the header's *Escalate*.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any


from bot.after_ack import ButtonSpec
from chat.schedule_blocks import ACTION_ESCALATION_DISMISS, ACTION_ESCALATION_ESCALATE, ACTION_ESCALATION_SNOOZE, PromptRef
from incident.cadence import Decision
from incident.errors import IncidentBotError
from service import escalation
from service.context import Context
from service.lifecycle import Reply

log = logging.getLogger(__name__)

DECISIONS = {
    ACTION_ESCALATION_ESCALATE: Decision.ESCALATED,
    ACTION_ESCALATION_SNOOZE: Decision.SNOOZED,
    ACTION_ESCALATION_DISMISS: Decision.DISMISSED,
}


def escalation_buttons() -> tuple[ButtonSpec, ...]:
    """The escalation prompt's buttons, run after the ack by the app's one wrapper (:class:`bot.after_ack.AfterAck`)."""
    return tuple(ButtonSpec(action_id, _handler(decision)) for action_id, decision in DECISIONS.items())


def _handler(decision: Decision) -> Callable[[Context, dict[str, Any]], Reply]:
    def handle(services: Context, body: dict[str, Any]) -> Reply:
        return Reply(decide(services, body, decision))

    return handle


def decide(services: Context, body: dict[str, Any], decision: Decision) -> str:
    """Read the click and hand it to :func:`service.escalation.decide`; returns the ephemeral reply."""
    message = body.get("message") or {}
    return escalation.decide(
        services, _prompt_ref(services, body), decision, str((body.get("user") or {}).get("id", "unknown")),
        channel_id=str((body.get("channel") or {}).get("id") or "") or None,
        message_ts=str((body.get("container") or {}).get("message_ts") or message.get("ts") or "") or None,
        prompt_text=_prompt_text(message))


def _prompt_ref(services: Context, body: dict[str, Any]) -> PromptRef:
    actions = body.get("actions") or []
    try:
        return PromptRef.decode(str(actions[0].get("value") or ""))
    except (IndexError, ValueError):
        raise IncidentBotError(services.refusal("no_escalation_prompt")) from None


def _prompt_text(message: dict[str, Any]) -> str:
    """The prompt's own text (its first section), to keep above the decision."""
    for block in message.get("blocks") or []:
        if block.get("type") == "section" and isinstance(block.get("text"), dict):
            return str(block["text"].get("text", ""))
    return str(message.get("text", ""))
