"""One entry of an incident's append-only timeline: what happened, who did it, when, and its facts.

Every kind of entry is an :class:`EntryKind`; the store refuses any other, so a new kind cannot be
written without being named here, and the post-mortem must say whether it uses or ignores it
(:data:`incident.postmortem.USED_KINDS` / :data:`incident.postmortem.IGNORED_KINDS`, checked by a test).
Payloads with more than one writer have one constructor here (:func:`assessment_payload`).

The domain reads entries (cadence, post-mortem, drill score, resolve check); where they are stored is
:mod:`persistence.timeline` (a Redis stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from incident.assessment import Assessment


class EntryKind(StrEnum):
    """Every kind of timeline entry (the value is what is stored)."""

    # the incident's state (written by persistence.store together with the state change)
    OPENED = "opened"
    STATUS_CHANGED = "status_changed"
    SEVERITY_CHANGED = "severity_changed"
    ROLE_ASSIGNED = "role_assigned"
    IMPACT_CHANGED = "impact_changed"
    # people
    STATUS_UPDATE = "status_update"
    ESCALATED = "escalated"
    ESCALATION_DECISION = "escalation_decision"
    RESOLVE_REQUESTED = "resolve_requested"
    # the bot's reminders (incident.cadence.NoticeKind: the send is recorded under its own kind)
    STATUS_PROMPT = "status_prompt"
    STATUS_OVERDUE = "status_overdue"
    STAKEHOLDER_PING = "stakeholder_ping"
    ESCALATION_PROMPT = "escalation_prompt"
    ESCALATION_PAGED = "escalation_paged"
    # the cluster
    ASSESSMENT_REQUESTED = "assessment_requested"
    ASSESSMENT = "assessment"
    RESOLVE_CHECK = "resolve_check"
    ACTION_REQUESTED = "action_requested"
    ACTION_CONFIRMED = "action_confirmed"
    ACTION_CANCELLED = "action_cancelled"
    ACTION = "action"
    """The audit line of a finished risky action (written by the action queue's script with its final status)."""
    # the channel log (service.channel_log)
    MESSAGE = "message"
    MESSAGE_EDITED = "message_edited"
    MESSAGE_DELETED = "message_deleted"
    REACTION_ADDED = "reaction_added"
    REACTION_REMOVED = "reaction_removed"
    PIN_ADDED = "pin_added"
    PIN_REMOVED = "pin_removed"
    # the bot itself
    BOT_ERROR = "bot_error"
    POSTMORTEM_DRAFTED = "postmortem_drafted"
    DRILL_STARTED = "drill_started"
    # Alertmanager (service.alerts): alerts of the groups linked to the incident
    ALERT_FIRED = "alert_fired"
    """An alert of a linked group started firing (labels, annotations, startsAt, the generator link)."""
    ALERT_RESOLVED = "alert_resolved"
    ALERTS_LINKED = "alerts_linked"
    """An alert group was linked: the incident was opened from it, or a person attached it."""
    ALERTS_FIRING_AT_RESOLVE = "alerts_firing_at_resolve"
    """The incident was resolved while linked alerts still fired (which ones)."""


@dataclass(frozen=True)
class TimelineEntry:
    """One timeline entry."""

    id: str
    kind: str
    actor: str
    at: datetime
    data: dict[str, Any]


def assessment_payload(assessment: "Assessment", *, purpose: str = "assessment",
                       **where: Any) -> dict[str, Any]:
    """The data of an ``assessment`` entry, for every writer: the full snapshot, its verdict and headline,
    why it ran (``assessment`` or ``resolve-validation``) and where it was shown (``channel``, ``progress_ts``)."""
    return {"snapshot": assessment.to_json(), "verdict": assessment.verdict.to_json(),
            "headline": assessment.verdict.headline, "purpose": purpose, **where}
