"""Game-day drill scoring, from the timeline of a drill incident (pure).

A drill breaks the cluster with a known scenario, so the expected failure pattern is known. The
score answers the runbook's questions: how fast was the first assessment, did it name the pattern,
did risky actions stay one at a time and follow the recovery order (infrastructure → etcd →
apiserver → scheduler/controller-manager → DNS/ingress → applications), did status updates keep
the cadence, and — with guided recovery — was every step clicked from a plan its suggested one, and how
many steps did it take until the pattern cleared. Which layer an action works on comes from its kind's spec (:mod:`incident.action_kinds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from incident.action_kinds import ActionSpecs, action_specs
from incident.postmortem import PostmortemReport
from incident.runbook import layer_index

UNKNOWN_ACTION_LAYER = "applications"
"""The layer of an action whose description no kind reads back (an entry written by hand or by an older bot)."""

FIRST_ASSESSMENT_TARGET = timedelta(minutes=5)


def action_layer(description: str, specs: ActionSpecs | None = None) -> str:
    """Which recovery layer an action works on: its description is read back with the kinds' own grammar
    (``cordon node x`` → the cordon spec → infrastructure; ``restart deployment kube-system/coredns`` →
    the restart spec, whose target names DNS → dns/ingress)."""
    matched = (specs or action_specs()).match(description)
    if matched is None:
        return UNKNOWN_ACTION_LAYER
    spec, args = matched
    return spec.layer_of(args.target)


@dataclass
class DrillScore:
    """One drill's result; ``points`` out of ``max_points``."""

    scenario: str
    expected_pattern: str
    time_to_first_assessment: timedelta | None
    pattern_identified: bool
    serialized: bool
    order_followed: bool
    order_violations: list[str] = field(default_factory=list)
    cadence_kept: bool = True
    longest_update_gap: timedelta | None = None
    suggested_order_followed: bool = True
    """Every action clicked from a recovery plan was the plan's suggested (primary) step."""
    skipped_suggestions: list[str] = field(default_factory=list)
    steps_to_clear: int | None = None
    """Actions run (undos included) until an assessment no longer found the expected pattern; ``None``: never."""

    @property
    def checks(self) -> list[tuple[str, bool]]:
        fast = self.time_to_first_assessment is not None and self.time_to_first_assessment <= FIRST_ASSESSMENT_TARGET
        return [
            (f"first assessment within {int(FIRST_ASSESSMENT_TARGET.total_seconds() // 60)} min", fast),
            (f"pattern identified ({self.expected_pattern})", self.pattern_identified),
            ("risky actions one at a time", self.serialized),
            ("recovery order followed", self.order_followed),
            ("status updates kept the cadence", self.cadence_kept),
            ("suggested recovery order followed" + (f" ({self.steps_to_clear} step(s) to clear the pattern)"
                                                     if self.steps_to_clear is not None else ""),
             self.suggested_order_followed),
        ]

    @property
    def points(self) -> int:
        return sum(1 for _, ok in self.checks if ok)

    @property
    def max_points(self) -> int:
        return len(self.checks)


def score_drill(report: PostmortemReport, scenario: str, expected_pattern: str, cadence: timedelta) -> DrillScore:
    """Score a drill from its post-mortem report (which already read the timeline)."""
    expected = expected_pattern.lower()
    identified = any(expected in pattern.lower() for pattern in report.root_cause_patterns)
    layers = [(action.description, action_layer(action.description)) for action in report.actions]
    violations = []
    for (earlier, earlier_layer), (later, later_layer) in zip(layers, layers[1:]):
        if layer_index(later_layer) < layer_index(earlier_layer):
            violations.append(f"{later} ({later_layer}) came after {earlier} ({earlier_layer})")
    updates = [e.at for e in report.key_events if e.kind == "status_update"]
    marks = [report.incident.opened_at, *updates, report.end]
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    longest = max(gaps) if gaps else None
    skipped = [f"{action.description} (plan step {action.plan_step}, not the suggested step)"
               for action in report.actions if action.plan_step is not None and not action.plan_primary]
    return DrillScore(
        suggested_order_followed=not skipped, skipped_suggestions=skipped,
        steps_to_clear=_steps_to_clear(report, expected),
        scenario=scenario, expected_pattern=expected_pattern,
        time_to_first_assessment=report.time_to_first_assessment, pattern_identified=identified,
        serialized=not report.parallel_actions, order_followed=not violations, order_violations=violations,
        cadence_kept=longest is None or longest <= cadence, longest_update_gap=longest,
    )


def _steps_to_clear(report: PostmortemReport, expected: str) -> int | None:
    """How many actions had finished when an assessment first stopped finding the expected pattern."""
    seen = False
    for point in report.assessments:
        found = any(expected in pattern.lower() for pattern in point.patterns)
        if found:
            seen = True
        elif seen:
            return sum(1 for action in report.actions if (action.finished_at or action.at) <= point.at)
    return None
