"""What an assessment found: typed check results, the verdict, and the JSON snapshot kept on the timeline.

Pure data. ``kube/assessor.py`` fills :class:`CheckResult` objects from the cluster, :mod:`incident.verdict`
turns them into a :class:`Verdict`, ``workers/assess.py`` renders them for Slack and stores
:meth:`Assessment.to_json` on the incident timeline, where the post-mortem and the resolve check read
it back (with :meth:`Assessment.from_json`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from incident.runbook import CONTROL_PLANE, Scope

CheckStatus = Literal["ok", "warn", "fail", "timeout", "error", "skipped"]
CHECK_STATUSES: tuple[CheckStatus, ...] = ("ok", "warn", "fail", "timeout", "error", "skipped")
UNFINISHED: frozenset[str] = frozenset({"timeout", "error", "skipped"})
"""Statuses meaning the check could not say anything about the cluster."""

SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: a status, one line for humans, and the facts the verdict reads."""

    name: str
    status: CheckStatus
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    title: str = ""

    @property
    def finished(self) -> bool:
        """Whether the check looked at the cluster (not timed out, errored or skipped)."""
        return self.status not in UNFINISHED

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title or self.name, "status": self.status, "summary": self.summary,
                "facts": self.facts, "duration_s": round(self.duration_s, 3)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CheckResult":
        status = str(data.get("status", "error"))
        return cls(
            name=str(data["name"]), status=status if status in CHECK_STATUSES else "error",  # type: ignore[arg-type]
            summary=str(data.get("summary", "")), facts=dict(data.get("facts") or {}),
            duration_s=float(data.get("duration_s") or 0.0), title=str(data.get("title") or data["name"]),
        )


@dataclass(frozen=True)
class PatternMatch:
    """A runbook pattern that matched, with the evidence for it."""

    key: str
    title: str
    scope: Scope
    layer: str
    evidence: tuple[str, ...]
    advice: tuple[str, ...]
    root_cause: str | None = None
    """For the control plane: the lowest failing layer of etcd > apiserver > scheduler/controller-manager."""
    layers: tuple[str, ...] = ()
    """Every recovery layer the evidence touches (the control plane can fail at several), root first."""


@dataclass(frozen=True)
class RecoveryStep:
    """One step of the recovery order that applies to this assessment."""

    order: int
    layer: str
    title: str
    advice: str
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class Unchecked:
    """A check that could not say anything, and why."""

    check: str
    title: str
    status: CheckStatus
    reason: str


@dataclass(frozen=True)
class Verdict:
    """Cluster-wide or component-level, which patterns, in which order to recover, what is unknown."""

    scope: Scope
    headline: str
    patterns: tuple[PatternMatch, ...] = ()
    recovery: tuple[RecoveryStep, ...] = ()
    unchecked: tuple[Unchecked, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def cluster_wide(self) -> bool:
        return self.scope == "cluster-wide"

    def pattern(self, key: str) -> PatternMatch | None:
        return next((p for p in self.patterns if p.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Verdict":
        return cls(
            scope=data.get("scope", "component"),
            headline=str(data.get("headline", "")),
            patterns=tuple(
                PatternMatch(**{**p, "evidence": tuple(p.get("evidence", ())), "advice": tuple(p.get("advice", ())),
                                "layers": tuple(p.get("layers", ()))})
                for p in data.get("patterns") or []
            ),
            recovery=tuple(RecoveryStep(**{**s, "patterns": tuple(s.get("patterns", ()))}) for s in data.get("recovery") or []),
            unchecked=tuple(Unchecked(**u) for u in data.get("unchecked") or []),
            notes=tuple(data.get("notes") or ()),
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


@dataclass
class Assessment:
    """One run of the assessment: every check (finished or not) and the verdict drawn from them."""

    cluster: str
    started_at: datetime
    finished_at: datetime
    budget_s: float
    checks: list[CheckResult]
    verdict: Verdict
    server: str | None = None
    interrupted: dict[str, Any] | None = None
    """Set when an earlier attempt of the same job died mid-way: which checks it had finished and which not."""

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        counts = {status: 0 for status in CHECK_STATUSES}
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The snapshot stored on the timeline (JSON-serializable)."""
        return {
            "version": SNAPSHOT_VERSION,
            "cluster": self.cluster,
            "server": self.server,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": round(self.duration_s, 3),
            "budget_s": self.budget_s,
            "checks": [check.to_json() for check in self.checks],
            "verdict": self.verdict.to_json(),
            "interrupted": self.interrupted,
        }

    def dumps(self, **kwargs: Any) -> str:
        return json.dumps(self.to_json(), default=str, **kwargs)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Assessment":
        return cls(
            cluster=str(data.get("cluster", "")),
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            budget_s=float(data.get("budget_s") or 0.0),
            checks=[CheckResult.from_json(c) for c in data.get("checks") or []],
            verdict=Verdict.from_json(data.get("verdict") or {}),
            server=data.get("server"),
            interrupted=data.get("interrupted"),
        )


def verdict_of_entry(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The verdict dict of an ``assessment`` timeline entry (``{"snapshot": …, "verdict": {…}}``), or ``{}``.

    Reads the top-level ``verdict`` first, else the one inside the snapshot, so entries written by older
    code or by the resolve check read the same way.
    """
    verdict = data.get("verdict")
    if isinstance(verdict, Mapping):
        return verdict
    snapshot = data.get("snapshot")
    if isinstance(snapshot, Mapping) and isinstance(snapshot.get("verdict"), Mapping):
        return snapshot["verdict"]
    return {}


CONTROL_PLANE_PATTERN = CONTROL_PLANE.key


def _control_plane_pattern(verdict: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The stored verdict's control-plane pattern, if it matched."""
    for pattern in verdict.get("patterns") or ():
        if isinstance(pattern, Mapping) and pattern.get("key") == CONTROL_PLANE_PATTERN:
            return pattern
    return None


def failing_control_plane_layers(verdict: Mapping[str, Any]) -> tuple[str, ...]:
    """The control-plane layers a stored verdict finds failing, root first (``()``: the control plane is fine).

    Read from the control-plane pattern's ``layers`` (etcd, apiserver, scheduler/controller-manager), the
    shape :meth:`Verdict.to_json` writes; the cadence's escalations and the actions' recovery-order guard
    both judge the control plane through this one reader.
    """
    pattern = _control_plane_pattern(verdict)
    if pattern is None:
        return ()
    layers = [str(layer) for layer in pattern.get("layers") or ()]
    layers = layers or [str(pattern.get("root_cause") or pattern.get("layer") or "")]
    return tuple(dict.fromkeys(layer for layer in layers if layer))


def control_plane_evidence(verdict: Mapping[str, Any]) -> str:
    """The control-plane pattern's title and first piece of evidence, for messages (``""`` without one)."""
    pattern = _control_plane_pattern(verdict)
    if pattern is None:
        return ""
    evidence = [str(item) for item in pattern.get("evidence") or ()][:1]
    title = str(pattern.get("title") or CONTROL_PLANE_PATTERN)
    return f"{title}: {evidence[0]}" if evidence else title


def pattern_titles(verdict: Mapping[str, Any]) -> list[str]:
    """The pattern titles a stored verdict names, in order (title, else name/key), empties left out."""
    names = []
    for pattern in verdict.get("patterns") or []:
        if isinstance(pattern, Mapping):
            names.append(str(pattern.get("title") or pattern.get("name") or pattern.get("key") or pattern.get("pattern") or ""))
        else:
            names.append(str(pattern))
    return [name for name in names if name]
