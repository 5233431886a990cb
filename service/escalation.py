"""Escalation (service layer): the one path from "escalate" to the escalation group and PagerDuty.

Two buttons lead here — the incident header's *Escalate* (a person decides, any time) and the
*Escalate* of a threshold prompt (the runbook's time thresholds, :mod:`incident.cadence`) — and both
announce the escalation with the same template, mention ``ESCALATION_USERGROUP`` and, when
``PAGERDUTY_ROUTING_KEY`` is set, queue the PagerDuty trigger (:mod:`service.paging`, deduplicated by
``<incident>-<rule>``; a by-hand escalation uses the rule key :data:`BY_HAND`).

A prompt's decision (escalate, snooze, dismiss) is recorded once per prompt (``escalation_decision``,
deduplicated), so a double click or a second person changes nothing and is told so; the prompt's
buttons are replaced by the decision and the schedule is recomputed (a snooze moves the next prompt).
"""

from __future__ import annotations

import logging

from chat.schedule_blocks import PromptRef, escalation_decided_blocks, text_blocks
from incident.cadence import CadencePolicy, Decision, EscalationRule
from incident.errors import IncidentBotError, SlackApiError
from incident.model import Incident, Status
from incident.timeline import EntryKind
from service import paging, reminders
from service.paging import BY_HAND
from service.context import Context

log = logging.getLogger(__name__)


def escalate(services: Context, incident: Incident, user_id: str, *, rule: EscalationRule | None = None,
             reason: str = "") -> str:
    """Announce the escalation in the channel, page PagerDuty if configured; returns the reply to the person."""
    settings, templates = services.settings, services.templates
    group = settings.escalation_usergroup
    text = templates.render("escalation_prompt.slack.j2", mode="announce", rule=rule, incident=incident,
                            actor=user_id, group=group, reason=reason)
    services.outbox.post(incident.channel_id, text, text_blocks(text), incident_id=incident.id)
    paged = settings.pagerduty_routing_key is not None
    if paged:
        paging.request_page(settings, services.redis, incident.id, rule.key if rule else BY_HAND, user_id)
    return templates.render("escalation_reply.slack.j2", paged=paged, group=group)


def escalate_by_hand(services: Context, incident: Incident, user_id: str, reason: str = "") -> str:
    """The header's *Escalate*: record the decision (``escalated``) and escalate."""
    if not incident.is_active:
        raise IncidentBotError(services.refusal("nothing_to_escalate", status=incident.status.value),
                               hint=services.refusal("nothing_to_escalate_hint"))
    services.store.timeline(incident.id).append(EntryKind.ESCALATED, user_id,
                                                {"reason": reason, "group": services.settings.escalation_usergroup},
                                                at=services.clock.now())
    return escalate(services, incident, user_id, reason=reason)


def decide(services: Context, ref: PromptRef, decision: Decision, user: str, *, channel_id: str | None,
           message_ts: str | None, prompt_text: str) -> str:
    """Record a decision on an escalation prompt and act on it; returns the ephemeral reply."""
    store, settings = services.store, services.settings
    incident = store.get(ref.incident_id)
    if incident.status != Status.OPEN:
        return services.templates.render("escalation_reply.slack.j2", stale=incident.status.value)
    policy = CadencePolicy.from_settings(settings)
    try:
        rule = policy.rule(ref.rule)
    except KeyError:
        raise IncidentBotError(services.refusal("unknown_threshold")) from None
    now = services.clock.now()
    until = now + policy.snooze if decision == Decision.SNOOZED else None
    recorded = store.timeline(incident.id).append(
        EntryKind.ESCALATION_DECISION, user,
        {"rule": rule.key, "decision": decision.value, "prompt_due": ref.due_epoch,
         "snoozed_until": until.timestamp() if until else None},
        at=now, dedupe=f"escalation_decision:{rule.key}:{ref.due_epoch}")
    if recorded is None:
        return services.templates.render("escalation_reply.slack.j2", already=True)
    templates = services.templates
    decided = templates.render("escalation_prompt.slack.j2", mode="decided", rule=rule, incident=incident,
                               decision=decision.value, actor=user, until=until)
    if message_ts:
        try:
            services.slack.update_message(channel_id or incident.channel_id, message_ts, f"{prompt_text}\n{decided}",
                                          escalation_decided_blocks(prompt_text, decided))
        except SlackApiError as error:
            log.warning("incident %s: could not update the escalation prompt: %s", incident.id, error.code)
    if decision == Decision.ESCALATED:
        reply = escalate(services, incident, user, rule=rule)
    else:
        reply = templates.render("escalation_reply.slack.j2", decision=decision.value, until=until)
    reminders.reschedule(settings, services.redis, incident.id, clock=services.clock)
    return reply
