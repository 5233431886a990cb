"""The status cadence and escalation planner: what is due for an incident at a given moment.

Pure core: no Redis, no Slack, no clock. :func:`plan` takes a :class:`CadencePolicy` (cadences,
grace and the runbook's escalation thresholds, as data from settings), a :class:`CadenceState`
(what the timeline says happened) and ``now``, and returns the notices due now plus the next
moment something can become due. ``workers.schedule`` evaluates it on every tick, sends what is
due, records each send on the timeline and schedules the next tick at ``Plan.next_at``.

Status cadence, per cycle. A cycle starts every *cadence* (by severity) after the last status
update (or the opening, or a reopening) while the incident is open or mitigated:

1. ``status_prompt`` at the cycle start — the commander is asked for an update;
2. ``status_overdue`` *grace* after the prompt was actually sent, if no update came;
3. ``stakeholder_ping`` *grace* after the overdue reminder — an automatic factual note to
   stakeholders ("no update for N min; last known state …").

A stage that would fall at or after the next cycle start is skipped; stages of an earlier cycle
are never sent late (after a long outage of the workers only the current cycle is caught up).

Escalation prompts, while the incident is open (not once mitigated). Each :class:`EscalationRule`
watches one *signal* (control plane failing, etcd repair under way, customer facing, business
pressure) and becomes due ``after`` its anchor — the opening ("still failing 30 min after the
incident started") or the moment the signal began ("etcd repair attempted for 45 min"). It is
prompted once; *Snooze* re-prompts at the end of the snooze if the signal still holds,
*Dismiss* and *Escalate* end it. A rule anchored at the opening whose time has come but whose
evidence is missing is re-checked every ``recheck`` (an assessment may land at any time).

:func:`digest` reads an incident's timeline entries into the state and the facts the messages
quote (latest verdict, last update, recent actions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from incident.assessment import failing_control_plane_layers, pattern_titles, verdict_of_entry
from incident.clock import parse_moment
from incident.timeline import EntryKind

if TYPE_CHECKING:
    from incident.model import Incident
    from incident.settings import Settings
    from incident.timeline import TimelineEntry


class NoticeKind(StrEnum):
    """What the bot sends; also the timeline kind that records the send."""

    STATUS_PROMPT = EntryKind.STATUS_PROMPT.value
    STATUS_OVERDUE = EntryKind.STATUS_OVERDUE.value
    STAKEHOLDER_PING = EntryKind.STAKEHOLDER_PING.value
    ESCALATION_PROMPT = EntryKind.ESCALATION_PROMPT.value


class Decision(StrEnum):
    """What someone decided on an escalation prompt (timeline kind ``escalation_decision``)."""

    ESCALATED = "escalated"
    SNOOZED = "snoozed"
    DISMISSED = "dismissed"


class Signal(StrEnum):
    """Evidence an escalation rule watches."""

    CONTROL_PLANE_FAILING = "control_plane_failing"
    ETCD_REPAIR = "etcd_repair"
    CUSTOMER_FACING = "customer_facing"
    BUSINESS_PRESSURE = "business_pressure"


class Anchor(StrEnum):
    """What a rule's threshold is counted from."""

    OPENED = "opened"
    SIGNAL = "signal"


_ORDER = {kind: index for index, kind in enumerate(NoticeKind)}


@dataclass(frozen=True)
class EscalationRule:
    """One runbook threshold: ``signal`` still true ``after`` the ``anchor`` → prompt to escalate."""

    key: str
    signal: Signal
    anchor: Anchor
    after: timedelta
    label: str
    """Short name for logs and pages; the message texts live in ``templates/escalation_prompt.slack.j2``."""


@dataclass(frozen=True)
class CadencePolicy:
    """Cadences and thresholds, as data."""

    cadence: Mapping[str, timedelta]
    """Minutes between status updates, by severity."""
    grace: timedelta
    """After a prompt until the overdue reminder, and after that until the stakeholder ping."""
    rules: tuple[EscalationRule, ...]
    snooze: timedelta = timedelta(minutes=15)
    """How long *Snooze* silences an escalation prompt."""
    recheck: timedelta = timedelta(minutes=1)
    """How often a due escalation without evidence is looked at again."""

    def cadence_for(self, severity: str) -> timedelta:
        """The cadence of a severity (the slowest one for an unknown severity)."""
        return self.cadence.get(severity) or max(self.cadence.values())

    def rule(self, key: str) -> EscalationRule:
        """The rule with this key; KeyError otherwise."""
        for rule in self.rules:
            if rule.key == key:
                return rule
        raise KeyError(key)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "CadencePolicy":
        """The policy configured by ``STATUS_CADENCE_*``, ``STATUS_GRACE_MINUTES`` and ``ESCALATE_*``."""
        minutes = timedelta(minutes=1)
        return cls(
            cadence={severity: settings.status_cadence_minutes(severity) * minutes for severity in ("sev1", "sev2", "sev3")},
            grace=settings.status_grace_minutes * minutes,
            rules=(
                EscalationRule("control_plane", Signal.CONTROL_PLANE_FAILING, Anchor.OPENED,
                               settings.escalate_control_plane_minutes * minutes, "control plane still failing"),
                EscalationRule("etcd_repair", Signal.ETCD_REPAIR, Anchor.SIGNAL,
                               settings.escalate_etcd_repair_minutes * minutes, "etcd manual repair dragging on"),
                EscalationRule("customer_facing", Signal.CUSTOMER_FACING, Anchor.OPENED,
                               settings.escalate_customer_facing_minutes * minutes, "customer-facing outage"),
                EscalationRule("business_pressure", Signal.BUSINESS_PRESSURE, Anchor.SIGNAL,
                               settings.escalate_business_pressure_minutes * minutes, "business pressure"),
            ),
        )


@dataclass(frozen=True)
class EscalationState:
    """What happened so far with one rule."""

    prompted_at: datetime | None = None
    decision: Decision | None = None
    decided_at: datetime | None = None
    snoozed_until: datetime | None = None


@dataclass(frozen=True)
class CadenceState:
    """Everything the planner needs to know about one incident."""

    severity: str
    status: str
    opened_at: datetime
    last_update_at: datetime | None = None
    """Last status update (or reopening): the cadence counts from here."""
    last_prompt_at: datetime | None = None
    last_overdue_at: datetime | None = None
    last_ping_at: datetime | None = None
    signals: Mapping[Signal, datetime] = field(default_factory=dict)
    """Signals that hold now, each with the moment it began."""
    escalations: Mapping[str, EscalationState] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """One notification due."""

    kind: NoticeKind
    due: datetime
    """When it became due."""
    anchor: datetime
    """What it belongs to: the cycle start (status kinds) or the threshold / snooze end (escalations)."""
    rule: EscalationRule | None = None

    def token(self, incident_id: str) -> str:
        """Identity of this send (``<incident>:<kind>[:<rule>]:<epoch>``); equal for every evaluator."""
        parts = [incident_id, self.kind.value] + ([self.rule.key] if self.rule else []) + [str(int(self.anchor.timestamp()))]
        return ":".join(parts)


@dataclass(frozen=True)
class Plan:
    """What is due now, and when to look again (``None``: never — the incident is resolved)."""

    due: tuple[Notice, ...]
    next_at: datetime | None


def plan(policy: CadencePolicy, state: CadenceState, now: datetime) -> Plan:
    """The notices due at ``now`` that were not sent yet, and the next moment something can be due."""
    if state.status == "resolved":
        return Plan((), None)
    notices: list[Notice] = []
    later: list[datetime] = []
    _plan_status(policy, state, now, notices, later)
    if state.status == "open":
        for rule in policy.rules:
            _plan_escalation(policy, rule, state, now, notices, later)
    notices.sort(key=lambda n: (n.due, _ORDER[n.kind], n.rule.key if n.rule else ""))
    return Plan(tuple(notices), min(later, default=None))


def _after(moment: datetime | None, start: datetime) -> bool:
    return moment is not None and moment >= start


def _plan_status(policy: CadencePolicy, state: CadenceState, now: datetime, notices: list[Notice],
                 later: list[datetime]) -> None:
    cadence = policy.cadence_for(state.severity)
    reference = max(state.last_update_at or state.opened_at, state.opened_at)
    if now < reference + cadence:
        later.append(reference + cadence)
        return
    cycle = reference + ((now - reference) // cadence) * cadence
    next_cycle = cycle + cadence
    later.append(next_cycle)
    if not _after(state.last_prompt_at, cycle):
        notices.append(Notice(NoticeKind.STATUS_PROMPT, cycle, cycle))
        return
    stages = ((NoticeKind.STATUS_OVERDUE, state.last_prompt_at, state.last_overdue_at),
              (NoticeKind.STAKEHOLDER_PING, state.last_overdue_at, state.last_ping_at))
    for kind, previous, sent in stages:
        if not _after(previous, cycle):
            return
        assert previous is not None
        due = previous + policy.grace
        if due >= next_cycle:
            return
        if _after(sent, cycle):
            continue
        if now >= due:
            notices.append(Notice(kind, due, cycle))
        else:
            later.append(due)
        return


def _plan_escalation(policy: CadencePolicy, rule: EscalationRule, state: CadenceState, now: datetime,
                     notices: list[Notice], later: list[datetime]) -> None:
    since = state.signals.get(rule.signal)
    record = state.escalations.get(rule.key, EscalationState())
    if record.decision in (Decision.ESCALATED, Decision.DISMISSED):
        return
    if record.decision == Decision.SNOOZED and record.snoozed_until is not None:
        due = record.snoozed_until
    else:
        anchor = state.opened_at if rule.anchor == Anchor.OPENED else since
        if anchor is None:
            return  # counted from a signal that does not hold: nothing to wait for yet
        due = anchor + rule.after
    if now < due:
        later.append(due)
    elif _after(record.prompted_at, due):
        return
    elif since is None:
        later.append(now + policy.recheck)
    else:
        notices.append(Notice(NoticeKind.ESCALATION_PROMPT, due, due, rule))


def record_sent(state: CadenceState, notice: Notice, at: datetime) -> CadenceState:
    """The state after ``notice`` was sent at ``at`` (what the timeline will say once recorded)."""
    if notice.kind == NoticeKind.STATUS_PROMPT:
        return replace(state, last_prompt_at=at)
    if notice.kind == NoticeKind.STATUS_OVERDUE:
        return replace(state, last_overdue_at=at)
    if notice.kind == NoticeKind.STAKEHOLDER_PING:
        return replace(state, last_ping_at=at)
    assert notice.rule is not None
    escalations = dict(state.escalations)
    escalations[notice.rule.key] = replace(escalations.get(notice.rule.key, EscalationState()), prompted_at=at)
    return replace(state, escalations=escalations)


# --- reading the timeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """What the assessments say, for the escalation rules and the messages."""

    verdict: str | None = None
    """Headline of the latest assessment (``None``: no assessment yet)."""
    assessed_at: datetime | None = None
    control_plane_failing_since: datetime | None = None
    etcd_repair_since: datetime | None = None


@dataclass(frozen=True)
class Digest:
    """An incident's timeline, read once: the planner's state and the facts the messages quote."""

    state: CadenceState
    evidence: Evidence
    last_update_text: str | None = None
    last_update_by: str | None = None
    actions: tuple[str, ...] = ()
    """The most recent risky actions, as ``description: outcome`` lines (newest last)."""
    prompts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The last escalation prompt of each rule (its recorded data: due, channel, ts)."""
    probes_off: Mapping[str, datetime] = field(default_factory=dict)
    """Deployments whose probes the bot removed (``probes off``) and has not restored, with since when:
    every status prompt reminds the channel (emergency isolation must not be forgotten)."""


MAX_ACTIONS = 3

DIGEST_KINDS: frozenset[EntryKind] = frozenset({
    EntryKind.STATUS_UPDATE, EntryKind.STATUS_CHANGED, EntryKind.ASSESSMENT, EntryKind.ACTION,
    EntryKind.ESCALATION_DECISION, *(EntryKind(kind.value) for kind in NoticeKind)})
"""The entry kinds :func:`digest` reads (the store is asked for these only)."""


def digest(incident: "Incident", entries: Iterable["TimelineEntry"]) -> Digest:
    """Read the timeline entries of ``incident`` (oldest first) into a :class:`Digest`."""
    last_update_at = last_prompt = last_overdue = last_ping = None
    update_text = update_by = None
    escalations: dict[str, EscalationState] = {}
    prompts: dict[str, Mapping[str, Any]] = {}
    actions: list[str] = []
    probes_off: dict[str, datetime] = {}
    verdict = assessed_at = cp_since = etcd_since = None
    for entry in entries:
        data = entry.data
        kind = entry.kind
        if kind == EntryKind.STATUS_UPDATE:
            last_update_at, update_text, update_by = entry.at, str(data.get("text", "")), entry.actor
        elif kind == EntryKind.STATUS_CHANGED and data.get("from") == "resolved" and data.get("to") == "open":
            last_update_at = entry.at  # a reopened incident starts a fresh cadence
        elif kind == NoticeKind.STATUS_PROMPT:
            last_prompt = entry.at
        elif kind == NoticeKind.STATUS_OVERDUE:
            last_overdue = entry.at
        elif kind == NoticeKind.STAKEHOLDER_PING:
            last_ping = entry.at
        elif kind == NoticeKind.ESCALATION_PROMPT and data.get("rule"):
            rule = str(data["rule"])
            escalations[rule] = replace(escalations.get(rule, EscalationState()), prompted_at=entry.at)
            prompts[rule] = data
        elif kind == EntryKind.ESCALATION_DECISION and data.get("rule"):
            escalations[str(data["rule"])] = _decided(escalations.get(str(data["rule"])), entry)
        elif kind == EntryKind.ACTION:
            description = str(data.get("description") or f"{data.get('kind', 'action')} {data.get('target', '')}".strip())
            actions.append(f"{description}: {data.get('outcome') or data.get('status') or 'in progress'}")
            if data.get("status") == "succeeded" and data.get("kind") == "probes-off":
                probes_off[str(data.get("target"))] = parse_moment(data.get("finished_at")) or entry.at
            elif data.get("status") == "succeeded" and data.get("kind") == "probes-restore":
                probes_off.pop(str(data.get("target")), None)
        elif kind == EntryKind.ASSESSMENT:
            found = verdict_of_entry(data)
            verdict, assessed_at = _headline(found), entry.at
            layers = failing_control_plane_layers(found)
            cp_since = _streak(cp_since, bool(layers), entry.at)
            etcd_since = _streak(etcd_since, "etcd" in layers, entry.at)  # the runbook's manual etcd repair
    evidence = Evidence(verdict, assessed_at, cp_since, etcd_since)
    signals: dict[Signal, datetime] = {}
    if cp_since is not None:
        signals[Signal.CONTROL_PLANE_FAILING] = cp_since
    if etcd_since is not None:
        signals[Signal.ETCD_REPAIR] = etcd_since
    if incident.customer_facing:
        signals[Signal.CUSTOMER_FACING] = incident.opened_at
    pressure = parse_moment(incident.extra.get("business_pressure_since"))
    if pressure is not None:
        signals[Signal.BUSINESS_PRESSURE] = pressure
    state = CadenceState(
        severity=incident.severity, status=incident.status.value, opened_at=incident.opened_at,
        last_update_at=last_update_at, last_prompt_at=last_prompt, last_overdue_at=last_overdue,
        last_ping_at=last_ping, signals=signals, escalations=escalations,
    )
    return Digest(state, evidence, update_text, update_by, tuple(actions[-MAX_ACTIONS:]), prompts, probes_off)


def _decided(previous: EscalationState | None, entry: "TimelineEntry") -> EscalationState:
    decision = Decision(str(entry.data.get("decision")))
    until = parse_moment(entry.data.get("snoozed_until")) if decision == Decision.SNOOZED else None
    return replace(previous or EscalationState(), decision=decision, decided_at=entry.at, snoozed_until=until)


def _headline(verdict: Mapping[str, Any]) -> str:
    patterns = pattern_titles(verdict)
    return str(verdict.get("headline") or verdict.get("summary") or ", ".join(patterns) or verdict.get("scope") or "no finding")


def _streak(since: datetime | None, holds: bool, at: datetime) -> datetime | None:
    """Start of an unbroken run of assessments where a finding holds."""
    if not holds:
        return None
    return since or at
