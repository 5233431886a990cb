"""Game-day drill scoring, from the timeline of a drill incident (pure).

A drill breaks the cluster with a known scenario, so the expected failure pattern is known. The
score answers the runbook's questions: how fast was the first assessment, did it name the pattern,
did risky actions stay one at a time and follow the recovery order (infrastructure → etcd →
apiserver → scheduler/controller-manager → DNS/ingress → applications), did status updates keep
the cadence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from incident.postmortem import PostmortemReport

RECOVERY_LAYERS: tuple[str, ...] = ("infrastructure", "etcd", "apiserver", "scheduler/controller-manager",
                                    "dns/ingress", "applications")
"""The runbook's recovery order, first to last."""

FIRST_ASSESSMENT_TARGET = timedelta(minutes=5)


def action_layer(description: str) -> str:
    """Which recovery layer an action works on, from its description (``cordon node x``, ``restart deployment kube-system/coredns``)."""
    text = description.lower()
    if " node" in f" {text}" and ("cordon" in text or "drain" in text or "delete node" in text):
        return "infrastructure"
    if "etcd" in text:
        return "etcd"
    if "apiserver" in text:
        return "apiserver"
    if "scheduler" in text or "controller-manager" in text:
        return "scheduler/controller-manager"
    if "coredns" in text or "kube-dns" in text or "ingress" in text:
        return "dns/ingress"
    return "applications"


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

    @property
    def checks(self) -> list[tuple[str, bool]]:
        fast = self.time_to_first_assessment is not None and self.time_to_first_assessment <= FIRST_ASSESSMENT_TARGET
        return [
            (f"first assessment within {int(FIRST_ASSESSMENT_TARGET.total_seconds() // 60)} min", fast),
            (f"pattern identified ({self.expected_pattern})", self.pattern_identified),
            ("risky actions one at a time", self.serialized),
            ("recovery order followed", self.order_followed),
            ("status updates kept the cadence", self.cadence_kept),
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
        if RECOVERY_LAYERS.index(later_layer) < RECOVERY_LAYERS.index(earlier_layer):
            violations.append(f"{later} ({later_layer}) came after {earlier} ({earlier_layer})")
    updates = [e.at for e in report.key_events if e.kind == "status_update"]
    marks = [report.incident.opened_at, *updates, report.end]
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    longest = max(gaps) if gaps else None
    return DrillScore(
        scenario=scenario, expected_pattern=expected_pattern,
        time_to_first_assessment=report.time_to_first_assessment, pattern_identified=identified,
        serialized=not report.parallel_actions, order_followed=not violations, order_violations=violations,
        cadence_kept=longest is None or longest <= cadence, longest_update_gap=longest,
    )
