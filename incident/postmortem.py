"""The post-mortem draft, computed from an incident and its timeline (pure; rendering is a template).

The timeline is read as a stream, so a 10,000-message incident stays within a small memory
budget: only key events, action items and per-participant counts are kept, plus a short excerpt of
each message so that a reaction arriving later can still point at the text it marks.

Sections follow the runbook's post-incident review: summary and times, timeline of key events,
root-cause hypothesis (from the assessment patterns, to be confirmed), recovery effectiveness
(what each action was followed by, and anything done in parallel against the runbook's advice),
business impact, process improvements and action items, participants.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from incident.assessment import pattern_titles, verdict_of_entry
from incident.clock import parse_moment
from incident.model import Incident
from incident.templates import is_user_id
from incident.timeline import EntryKind, TimelineEntry

EXCERPT = 300
SECTION_HEADINGS: tuple[str, ...] = (
    "## Summary", "## Timeline (UTC)", "## Root cause (hypothesis — to confirm)", "## Recovery effectiveness",
    "## Business impact", "## Process improvements and action items", "## Participants",
)
"""The sections every draft has (``templates/postmortem.md.j2``; an override should keep them)."""


@dataclass(frozen=True)
class KeyEvent:
    """One line of the post-mortem timeline."""

    at: datetime
    kind: str
    actor: str
    summary: str
    link: str | None = None


@dataclass(frozen=True)
class AssessmentPoint:
    """What one assessment found (from its timeline entry)."""

    at: datetime
    scope: str
    patterns: tuple[str, ...]
    failing: tuple[str, ...]
    headline: str


@dataclass(frozen=True)
class ActionRecord:
    """One risky action from its audit entry."""

    at: datetime
    description: str
    requested_by: str
    confirmed_by: tuple[str, ...]
    outcome: str
    started_at: datetime | None
    finished_at: datetime | None
    action_id: str = ""
    plan_step: int | None = None
    """The recovery plan's step it was requested from (``None``: typed, or an undo)."""
    plan_primary: bool = False
    """It was the plan's primary step when clicked (the suggested next step)."""
    undo_of: str = ""
    """The action it undid (its Undo button)."""

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.started_at and self.finished_at else None


@dataclass(frozen=True)
class PatternClearing:
    """A pattern of the first verdict, and when an assessment first no longer found it."""

    title: str
    first_seen: datetime
    cleared_at: datetime | None


@dataclass(frozen=True)
class ActionEffect:
    """An action and what the next assessment showed compared with the previous one."""

    action: ActionRecord
    before: AssessmentPoint | None
    after: AssessmentPoint | None

    @property
    def verdict(self) -> str:
        if self.before is None or self.after is None:
            return "not measured (no assessment before and after)"
        fixed = sorted(set(self.before.failing) - set(self.after.failing))
        new = sorted(set(self.after.failing) - set(self.before.failing))
        if fixed and not new:
            return "followed by improvement: " + ", ".join(fixed) + " recovered"
        if new and not fixed:
            return "followed by degradation: " + ", ".join(new) + " started failing"
        if fixed and new:
            return f"mixed: {', '.join(fixed)} recovered, {', '.join(new)} started failing"
        return "no measurable change in the checks"


@dataclass(frozen=True)
class ActionItem:
    at: datetime
    author: str
    text: str
    link: str | None


@dataclass
class AlertInvolved:
    """One Alertmanager alert linked to the incident (from its ``alert_fired`` / ``alert_resolved`` entries)."""

    fingerprint: str
    name: str
    labels: str
    starts_at: datetime | None
    resolved_at: datetime | None
    url: str | None


@dataclass
class PostmortemReport:
    """Everything the post-mortem template renders."""

    incident: Incident
    generated_at: datetime
    max_severity: str
    key_events: list[KeyEvent] = field(default_factory=list)
    assessments: list[AssessmentPoint] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    effects: list[ActionEffect] = field(default_factory=list)
    parallel_actions: list[tuple[ActionRecord, ActionRecord]] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    important_messages: list[KeyEvent] = field(default_factory=list)
    participants: list[tuple[str, int]] = field(default_factory=list)
    message_count: int = 0
    status_updates: int = 0
    escalations: int = 0
    resolve_override: str | None = None
    drill: dict[str, Any] | None = None
    """The ``drill_started`` entry's data when this incident was a game-day drill (scenario, expected pattern)."""
    alerts: list[AlertInvolved] = field(default_factory=list)
    """The linked Alertmanager alerts, first fired first."""
    detected_at: datetime | None = None
    """The first linked alert's ``startsAt``: when the problem was detected (before anyone opened anything)."""
    acknowledged_at: datetime | None = None
    """The first timeline entry by a person (a message, a click, a command): when someone responded."""
    firing_at_resolve: list[str] = field(default_factory=list)
    """Alerts still firing when the incident was resolved (``alerts_firing_at_resolve``)."""
    origins: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Action id → where its request came from (``plan_step``, ``plan_primary``, ``undo_of``; guided recovery)."""

    @property
    def end(self) -> datetime:
        return self.incident.resolved_at or self.generated_at

    @property
    def duration(self) -> timedelta:
        return self.end - self.incident.opened_at

    @property
    def first_assessment(self) -> AssessmentPoint | None:
        return self.assessments[0] if self.assessments else None

    @property
    def time_to_first_assessment(self) -> timedelta | None:
        first = self.first_assessment
        return first.at - self.incident.opened_at if first else None

    @property
    def time_to_mitigate(self) -> timedelta | None:
        return self.incident.mitigated_at - self.incident.opened_at if self.incident.mitigated_at else None

    @property
    def time_to_resolve(self) -> timedelta | None:
        return self.incident.resolved_at - self.incident.opened_at if self.incident.resolved_at else None

    @property
    def detection(self) -> datetime:
        """Detection time: the first alert's ``startsAt``, else the opening."""
        return self.detected_at or self.incident.opened_at

    @property
    def time_to_open(self) -> timedelta | None:
        """Detection → incident opened (only with alerts)."""
        return self.incident.opened_at - self.detected_at if self.detected_at else None

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        """Detection → the first response by a person."""
        return self.acknowledged_at - self.detection if self.acknowledged_at else None

    @property
    def time_to_mitigate_from_detection(self) -> timedelta | None:
        """Detection → mitigated (only with alerts; without, it equals :attr:`time_to_mitigate`)."""
        return self.incident.mitigated_at - self.detected_at if self.detected_at and self.incident.mitigated_at else None

    @property
    def customer_facing_duration(self) -> timedelta | None:
        if not self.incident.customer_facing:
            return None
        end = self.incident.mitigated_at or self.incident.resolved_at or self.generated_at
        return end - self.incident.opened_at

    @property
    def undone(self) -> list[tuple[ActionRecord, ActionRecord]]:
        """(the action, the action that undid it) for every Undo that ran."""
        by_id = {action.action_id: action for action in self.actions if action.action_id}
        return [(by_id[a.undo_of], a) for a in self.actions if a.undo_of and a.undo_of in by_id]

    @property
    def pattern_clearing(self) -> list[PatternClearing]:
        """Each pattern of the first verdict that found one, and when it first cleared (time to recovery)."""
        first = next((point for point in self.assessments if point.patterns), None)
        if first is None:
            return []
        later = [point for point in self.assessments if point.at > first.at]
        return [PatternClearing(title, first.at, next((p.at for p in later if title not in p.patterns), None))
                for title in first.patterns]

    @property
    def root_cause_patterns(self) -> list[str]:
        """Patterns named by the assessments, most recent worst first, without repeats."""
        seen: list[str] = []
        for point in self.assessments:
            for pattern in point.patterns:
                if pattern not in seen:
                    seen.append(pattern)
        return seen


def _failing_checks(data: dict[str, Any]) -> tuple[str, ...]:
    snapshot = data.get("snapshot")
    if not isinstance(snapshot, dict):
        return ()
    failing = []
    for check in snapshot.get("checks") or []:
        if isinstance(check, dict) and check.get("status") in ("fail", "timeout", "error"):
            failing.append(str(check.get("name")))
    return tuple(sorted(failing))


def assessment_point(entry: TimelineEntry) -> AssessmentPoint:
    verdict = verdict_of_entry(entry.data)
    patterns = tuple(pattern_titles(verdict))
    scope = str(verdict.get("scope") or "unknown")
    headline = str(verdict.get("headline") or verdict.get("summary") or (", ".join(patterns) if patterns else scope))
    return AssessmentPoint(entry.at, scope, patterns, _failing_checks(entry.data), headline)


def action_record(entry: TimelineEntry, origin: dict[str, Any] | None = None) -> ActionRecord:
    data = entry.data
    origin = origin or {}
    description = str(data.get("description") or f"{data.get('kind', 'action')} {data.get('target', '')}".strip())
    confirmed = data.get("confirmed_by") or []
    return ActionRecord(
        at=entry.at, description=description, requested_by=str(data.get("requested_by") or entry.actor),
        confirmed_by=tuple(confirmed if isinstance(confirmed, list) else [confirmed]),
        outcome=str(data.get("outcome") or data.get("status") or "unknown"),
        started_at=parse_moment(data.get("started_at")), finished_at=parse_moment(data.get("finished_at")),
        action_id=str(data.get("action_id") or ""),
        plan_step=int(origin["plan_step"]) if isinstance(origin.get("plan_step"), int) else None,
        plan_primary=bool(origin.get("plan_primary")), undo_of=str(origin.get("undo_of") or ""),
    )


def _overlaps(actions: list[ActionRecord]) -> list[tuple[ActionRecord, ActionRecord]]:
    timed = sorted((a for a in actions if a.started_at and a.finished_at), key=lambda a: a.started_at)  # type: ignore[arg-type, return-value]
    pairs = []
    for i, first in enumerate(timed):
        for second in timed[i + 1:]:
            if second.started_at < first.finished_at:  # type: ignore[operator]
                pairs.append((first, second))
    return pairs


USED_KINDS: frozenset[EntryKind] = frozenset({
    EntryKind.OPENED, EntryKind.STATUS_CHANGED, EntryKind.SEVERITY_CHANGED, EntryKind.ROLE_ASSIGNED,
    EntryKind.IMPACT_CHANGED, EntryKind.STATUS_UPDATE, EntryKind.ESCALATED, EntryKind.ESCALATION_DECISION,
    EntryKind.ESCALATION_PROMPT, EntryKind.ASSESSMENT, EntryKind.ACTION, EntryKind.MESSAGE, EntryKind.REACTION_ADDED,
    EntryKind.PIN_ADDED, EntryKind.DRILL_STARTED,
    EntryKind.ALERT_FIRED, EntryKind.ALERT_RESOLVED, EntryKind.ALERTS_LINKED, EntryKind.ALERTS_FIRING_AT_RESOLVE,
    EntryKind.ACTION_REQUESTED,
})
"""The entry kinds :func:`build_report` reads."""

IGNORED_KINDS: dict[EntryKind, str] = {
    EntryKind.MESSAGE_EDITED: "the excerpts quote a message as first posted",
    EntryKind.MESSAGE_DELETED: "a deleted message stays in the log as it was posted",
    EntryKind.REACTION_REMOVED: "a marker once set (action item, important) stays in the report",
    EntryKind.PIN_REMOVED: "as for reactions: once marked important, kept",
    EntryKind.STATUS_PROMPT: "the bot's reminder; the status updates it asked for are counted",
    EntryKind.STATUS_OVERDUE: "the bot's reminder; the cadence is judged from the updates",
    EntryKind.STAKEHOLDER_PING: "the bot's reminder to stakeholders",
    EntryKind.ESCALATION_PAGED: "the escalation itself is counted from the decision",
    EntryKind.ASSESSMENT_REQUESTED: "the assessment's result is what the report shows",
    EntryKind.RESOLVE_REQUESTED: "the status change to resolved is the event",
    EntryKind.RESOLVE_CHECK: "its validation assessment is an assessment entry; an override is on the status change",
    EntryKind.ACTION_CONFIRMED: "the action's audit line (kind action) carries who asked and confirmed",
    EntryKind.ACTION_CANCELLED: "a cancelled action changed nothing in the cluster",
    EntryKind.BOT_ERROR: "the bot's own trouble (logged and on the timeline for operators), not the incident's",
    EntryKind.POSTMORTEM_DRAFTED: "the report's own record",
}
"""Entry kinds the post-mortem deliberately leaves out, and why (a test checks every kind is in one of the two)."""


def build_report(incident: Incident, entries: Iterable[TimelineEntry], *, now: datetime,
                 important_reaction: str = "pushpin", action_item_reaction: str = "action-item",
                 permalink_base: str | None = None) -> PostmortemReport:
    """Read the timeline once and compute every section."""
    severities = {"sev1": 1, "sev2": 2, "sev3": 3}
    report = PostmortemReport(incident=incident, generated_at=now, max_severity=incident.severity)
    excerpts: dict[str, tuple[str, str]] = {}
    speakers: Counter[str] = Counter()
    marked_items: set[str] = set()
    marked_important: set[str] = set()
    alerts: dict[str, AlertInvolved] = {}

    def link(data: dict[str, Any]) -> str | None:
        ts = data.get("ts")
        if not permalink_base or not ts:
            return None
        return f"{permalink_base.rstrip('/')}/archives/{data.get('channel', incident.channel_id)}/p{str(ts).replace('.', '')}"

    def event(entry: TimelineEntry, summary: str, url: str | None = None) -> None:
        report.key_events.append(KeyEvent(entry.at, entry.kind, entry.actor, summary, url))

    for entry in entries:
        data = entry.data
        kind = entry.kind
        if report.acknowledged_at is None and is_user_id(entry.actor):
            report.acknowledged_at = entry.at
        if kind in (EntryKind.ALERT_FIRED, EntryKind.ALERT_RESOLVED):
            _alert_entry(report, alerts, entry)
        elif kind == EntryKind.ALERTS_LINKED:
            how = "opened from" if data.get("how") == "opened" else "attached:"
            event(entry, f"Alerts {how} {data.get('title', '')} ({data.get('alerts', 0)} alert(s), "
                         f"{data.get('firing', 0)} firing)")
        elif kind == EntryKind.ALERTS_FIRING_AT_RESOLVE:
            names = [str(a.get("name")) for a in data.get("alerts") or [] if isinstance(a, dict)]
            report.firing_at_resolve = names
            event(entry, f"Resolved while {data.get('count', len(names))} linked alert(s) still fired: "
                         + ", ".join(names[:10]))
        elif kind == EntryKind.MESSAGE:
            report.message_count += 1
            if not data.get("bot"):
                speakers[entry.actor] += 1
            excerpts[str(data.get("ts"))] = (entry.actor, str(data.get("text", ""))[:EXCERPT])
        elif kind in (EntryKind.REACTION_ADDED, EntryKind.PIN_ADDED):
            ts = str(data.get("ts"))
            author, text = excerpts.get(ts, ("unknown", ""))
            if kind == EntryKind.REACTION_ADDED and data.get("reaction") == action_item_reaction and ts not in marked_items:
                marked_items.add(ts)
                report.action_items.append(ActionItem(entry.at, author, text, link(data)))
            elif (kind == EntryKind.PIN_ADDED or data.get("reaction") == important_reaction) and ts not in marked_important:
                marked_important.add(ts)
                if text:
                    item = KeyEvent(entry.at, "important_message", author, text, link(data))
                    report.important_messages.append(item)
                    report.key_events.append(item)
        elif kind == EntryKind.OPENED:
            event(entry, f"Incident opened ({str(data.get('severity', '')).upper()}): {data.get('title', '')}")
        elif kind == EntryKind.STATUS_CHANGED:
            event(entry, f"Status {data.get('from')} → {data.get('to')}" + (f" ({data['note']})" if data.get("note") else ""))
            if data.get("override_reason"):
                report.resolve_override = str(data["override_reason"])
        elif kind == EntryKind.SEVERITY_CHANGED:
            to = str(data.get("to"))
            if severities.get(to, 9) < severities.get(report.max_severity, 9):
                report.max_severity = to
            event(entry, f"Severity {str(data.get('from')).upper()} → {to.upper()}")
        elif kind == EntryKind.DRILL_STARTED:
            report.drill = dict(data)
            event(entry, f"Drill started: {data.get('description') or data.get('scenario')}")
        elif kind == EntryKind.IMPACT_CHANGED:
            parts = []
            if "customer_facing" in data:
                parts.append("customer-facing" if data["customer_facing"] else "internal only")
            if "business_pressure" in data:
                parts.append("business pressure " + ("on" if data["business_pressure"] else "off"))
            event(entry, "Impact: " + ", ".join(parts))
        elif kind == EntryKind.ROLE_ASSIGNED:
            event(entry, f"{data.get('role')} → {data.get('user')}")
        elif kind == EntryKind.STATUS_UPDATE:
            report.status_updates += 1
            event(entry, f"Status update: {str(data.get('text', ''))[:EXCERPT]}")
        elif kind == EntryKind.ASSESSMENT:
            point = assessment_point(entry)
            report.assessments.append(point)
            event(entry, f"Assessment: {point.headline}")
        elif kind == EntryKind.ACTION_REQUESTED:
            origin = {key: data[key] for key in ("plan_step", "plan_primary", "undo_of") if key in data}
            if origin and data.get("action_id"):
                report.origins[str(data["action_id"])] = origin
        elif kind == EntryKind.ACTION:
            record = action_record(entry, report.origins.get(str(data.get("action_id") or "")))
            report.actions.append(record)
            event(entry, f"Action {record.description}: {record.outcome}")
        elif kind in (EntryKind.ESCALATED, EntryKind.ESCALATION_DECISION, EntryKind.ESCALATION_PROMPT):
            if kind != EntryKind.ESCALATION_PROMPT:
                report.escalations += 1
            event(entry, f"{kind.replace('_', ' ').capitalize()}: " + ", ".join(f"{k}={v}" for k, v in data.items() if v))
    report.alerts = sorted(alerts.values(), key=lambda a: (a.starts_at is None, a.starts_at or now))
    if report.detected_at is not None:
        first = report.alerts[0]
        report.key_events.append(KeyEvent(report.detected_at, "detection", "alertmanager",
                                          f"Detection: {first.name} fired ({first.labels})", first.url))
    report.key_events.sort(key=lambda e: e.at)
    report.participants = speakers.most_common()
    report.effects = [_effect(action, report.assessments) for action in report.actions]
    report.parallel_actions = _overlaps(report.actions)
    return report


def _alert_entry(report: PostmortemReport, alerts: dict[str, AlertInvolved], entry: TimelineEntry) -> None:
    data = entry.data
    fingerprint = str(data.get("fingerprint") or "")
    labels = data.get("labels") if isinstance(data.get("labels"), dict) else {}
    starts_at = parse_moment(data.get("starts_at"))
    if entry.kind == EntryKind.ALERT_FIRED:
        if starts_at is not None and (report.detected_at is None or starts_at < report.detected_at):
            report.detected_at = starts_at
        if fingerprint not in alerts or alerts[fingerprint].resolved_at is not None:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname").replace("|", "\\|")
            name = str(labels.get("alertname") or fingerprint).replace("|", "\\|")  # both go into a Markdown table
            alerts[fingerprint] = AlertInvolved(fingerprint, name, shown,
                                                starts_at, None, str(data.get("generator_url") or "") or None)
    elif fingerprint in alerts:
        known = alerts[fingerprint]
        alerts[fingerprint] = AlertInvolved(known.fingerprint, known.name, known.labels, known.starts_at,
                                            parse_moment(data.get("ends_at")) or entry.at, known.url)


def _effect(action: ActionRecord, assessments: list[AssessmentPoint]) -> ActionEffect:
    start = action.started_at or action.at
    end = action.finished_at or action.at
    before = next((a for a in reversed(assessments) if a.at <= start), None)
    after = next((a for a in assessments if a.at >= end), None)
    return ActionEffect(action, before, after)
