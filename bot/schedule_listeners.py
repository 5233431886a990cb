"""Listeners of the escalation prompt buttons: Escalate, Snooze 15 min, Dismiss.

Each click is acknowledged first, then recorded on the timeline as ``escalation_decision``
(deduplicated per prompt, so a double click or a second person changes nothing and is told so),
the prompt's buttons are replaced by the decision, and the schedule is recomputed (a snooze moves
the next prompt). *Escalate* also mentions the configured escalation group in the channel and,
when a PagerDuty routing key is configured, queues the PagerDuty trigger (a worker job, retried).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from service.context import Context
from chat.schedule_blocks import (
    ACTION_ESCALATION_DISMISS,
    ACTION_ESCALATION_ESCALATE,
    ACTION_ESCALATION_SNOOZE,
    PromptRef,
    escalation_decided_blocks,
    text_blocks,
)
from incident.cadence import CadencePolicy, Decision
from incident.errors import IncidentBotError, SlackApiError
from incident.model import Status
from incident.timeline import EntryKind
from service import paging, reminders

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
    """Record a decision on an escalation prompt and act on it; returns the ephemeral reply."""
    ref = _prompt_ref(body)
    user = str((body.get("user") or {}).get("id", "unknown"))
    store, settings, slack = services.store, services.settings, services.slack
    incident = store.get(ref.incident_id)
    if incident.status != Status.OPEN:
        return f"The incident is {incident.status.value}; escalation prompts no longer apply."
    policy = CadencePolicy.from_settings(settings)
    try:
        rule = policy.rule(ref.rule)
    except KeyError:
        raise IncidentBotError("This prompt names a threshold the bot no longer knows; it changed nothing.") from None
    now = services.clock.now()
    until = now + policy.snooze if decision == Decision.SNOOZED else None
    recorded = store.timeline(incident.id).append(
        EntryKind.ESCALATION_DECISION, user,
        {"rule": rule.key, "decision": decision.value, "prompt_due": ref.due_epoch,
         "snoozed_until": until.timestamp() if until else None},
        at=now, dedupe=f"escalation_decision:{rule.key}:{ref.due_epoch}")
    if recorded is None:
        return "This prompt was already decided; your click changed nothing."
    templates = services.templates
    decided = templates.render("escalation_prompt.slack.j2", mode="decided", rule=rule, incident=incident,
                               decision=decision.value, actor=user, until=until)
    channel_id = str((body.get("channel") or {}).get("id") or incident.channel_id)
    message = body.get("message") or {}
    message_ts = str((body.get("container") or {}).get("message_ts") or message.get("ts") or "")
    if message_ts:
        try:
            prompt = _prompt_text(message)
            slack.update_message(channel_id, message_ts, f"{prompt}\n{decided}", escalation_decided_blocks(prompt, decided))
        except SlackApiError as error:
            log.warning("incident %s: could not update the escalation prompt: %s", incident.id, error.code)
    reply = {Decision.SNOOZED: f"Snoozed until {until:%H:%M} UTC." if until else "Snoozed.",
             Decision.DISMISSED: "Dismissed; no more prompts for this threshold.",
             Decision.ESCALATED: "Escalation posted and recorded."}[decision]
    if decision == Decision.ESCALATED:
        group = settings.escalation_usergroup
        text = templates.render("escalation_prompt.slack.j2", mode="announce", rule=rule, incident=incident,
                                actor=user, group=group)
        slack.post_message(incident.channel_id, text, text_blocks(text))
        if settings.pagerduty_routing_key is not None:
            paging.request_page(settings, services.redis, incident.id, rule.key, user)
            reply += " PagerDuty is being triggered."
        if group is None:
            reply += " No ESCALATION_USERGROUP is configured, so nobody was mentioned; set it to page the seniors."
    reminders.reschedule(settings, services.redis, incident.id, clock=services.clock)
    return reply


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

