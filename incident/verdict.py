"""From check results to a verdict, by the runbook's rules (pure: no cluster, no Slack).

:func:`decide` matches every :class:`~incident.runbook.Pattern` against the facts of the checks that
finished, applies the control-plane hierarchy (etcd > apiserver > scheduler/controller-manager), decides
cluster-wide vs component-level, orders the recovery steps by :data:`~incident.runbook.RECOVERY_ORDER`
and lists what could not be checked. Used by ``kube/assessor.py``; unit-tested on hand-made results.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from incident.assessment import CheckResult, PatternMatch, RecoveryStep, Unchecked, Verdict
from incident.runbook import (
    CONTROL_PLANE_HIERARCHY,
    ONE_AT_A_TIME,
    PATTERNS,
    RECOVERY_ORDER,
    THRESHOLDS,
    UNREACHABLE_HEADLINE,
    Pattern,
    Signal,
    Thresholds,
    layer_index,
)


def format_value(value: Any, limit: int = THRESHOLDS.top_offenders) -> str:
    """A fact as evidence text: lists and dicts are cut to ``limit`` items with "and N more"."""
    if isinstance(value, Mapping):
        items = [f"{key} ({val})" for key, val in value.items()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = [str(item) for item in value]
    elif isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.1f}"
    else:
        return str(value)
    extra = 0
    if items and items[-1].startswith("… ") and items[-1].endswith(" more"):  # a list already cut by the check
        extra = int(items.pop()[2:-5] or 0)
    if len(items) > limit:
        extra += len(items) - limit
        items = items[:limit]
    if not items:
        return "none"
    return ", ".join(items) + (f" and {extra} more" if extra else "")


class _Facts(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


class _EvidenceFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec and isinstance(value, (int, float)):
            return format(value, format_spec)
        return format_value(value)


_FORMATTER = _EvidenceFormatter()


def evidence_text(template: str, facts: Mapping[str, Any], thresholds: Thresholds = THRESHOLDS) -> str:
    """Fill an evidence template from a check's facts (and the thresholds); unknown names show as ``?``."""
    values = _Facts({**{name: getattr(thresholds, name) for name in thresholds.__dataclass_fields__}, **facts})
    return _FORMATTER.vformat(template, (), values)


def signal_fires(signal: Signal, facts: Mapping[str, Any]) -> bool:
    """Whether one signal holds for a check's facts (a missing fact never fires)."""
    value = facts.get(signal.fact)
    if value is None:
        return False
    if signal.op == "true":
        return value is True
    if signal.op == "false":
        return value is False
    if signal.op == "nonempty":
        return bool(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if signal.op == ">":
        return value > signal.value
    if signal.op == ">=":
        return value >= signal.value
    raise ValueError(f"unknown signal op {signal.op!r}")


def _match(pattern: Pattern, checks: Mapping[str, CheckResult], thresholds: Thresholds) -> PatternMatch | None:
    strong: list[Signal] = []
    evidence: list[str] = []
    for signal in pattern.signals:
        check = checks.get(signal.check)
        if check is None or not check.finished or not signal_fires(signal, check.facts):
            continue
        evidence.append(evidence_text(signal.evidence, check.facts, thresholds))
        if signal.strong:
            strong.append(signal)
    if not strong:
        return None
    layer, root = pattern.layer, None
    layers = sorted({s.layer or pattern.layer for s in strong}, key=layer_index)
    if pattern.key == "control-plane":
        root = layer = layers[0]
    scope = pattern.scope
    if pattern.key == "node-failure":
        scope = _node_failure_scope(checks["nodes"].facts, thresholds)
    return PatternMatch(pattern.key, pattern.title, scope, layer, tuple(evidence), pattern.advice, root,  # type: ignore[arg-type]
                        tuple(layers))


def _node_failure_scope(facts: Mapping[str, Any], thresholds: Thresholds) -> str:
    total = int(facts.get("total") or 0)
    down = int(facts.get("not_ready") or 0) + int(facts.get("unknown") or 0)
    if total and down / total >= thresholds.node_failure_cluster_wide_fraction:
        return "cluster-wide"
    return "component"


def _apiserver_unreachable(checks: Mapping[str, CheckResult]) -> CheckResult | None:
    check = checks.get("apiserver")
    if check is not None and check.facts.get("reachable") is False:
        return check
    return None


def _recovery(matches: Sequence[PatternMatch]) -> tuple[RecoveryStep, ...]:
    layers: dict[str, list[str]] = {}
    for match in matches:
        for layer in match.layers or (match.layer,):
            layers.setdefault(layer, [])
            if match.title not in layers[layer]:
                layers[layer].append(match.title)
    steps = []
    for order, key in enumerate(sorted(layers, key=layer_index), start=1):
        layer = next(l for l in RECOVERY_ORDER if l.key == key)
        steps.append(RecoveryStep(order, key, layer.title, layer.advice, tuple(layers[key])))
    return tuple(steps)


def _unchecked(results: Iterable[CheckResult], unreachable: CheckResult | None) -> tuple[Unchecked, ...]:
    missing = []
    for check in results:
        if check.finished:
            continue
        reason = check.summary
        if unreachable is not None and check.status in ("error", "timeout") and "unreachable" not in reason:
            reason = f"API server unreachable ({check.summary})"
        missing.append(Unchecked(check.name, check.title or check.name, check.status, reason))
    return tuple(missing)


def _notes(results: Sequence[CheckResult], matches: Sequence[PatternMatch], suppressed: Sequence[PatternMatch],
           patterns: Sequence[Pattern]) -> tuple[str, ...]:
    explained = {s.check for p in patterns for s in p.signals if any(m.key == p.key for m in matches)}
    notes = [f"{check.title or check.name}: {check.summary}" for check in results
             if check.status in ("warn", "fail") and check.name not in explained]
    for match in suppressed:
        notes.append(f"Also seen ({match.title.lower()}, probably a consequence): " + "; ".join(match.evidence))
    return tuple(notes)


def decide(results: Sequence[CheckResult], *, patterns: Sequence[Pattern] = PATTERNS,
           thresholds: Thresholds = THRESHOLDS) -> Verdict:
    """The verdict for a set of check results (unfinished ones are listed, never dropped)."""
    checks = {check.name: check for check in results}
    matched = [m for m in (_match(p, checks, thresholds) for p in patterns) if m is not None]
    suppressed_keys = {key for p in patterns if any(m.key == p.key for m in matched) for key in p.suppresses}
    matches = [m for m in matched if m.key not in suppressed_keys]
    suppressed = [m for m in matched if m.key in suppressed_keys]
    matches.sort(key=lambda m: (layer_index(m.layer), m.title))
    unreachable = _apiserver_unreachable(checks)
    unchecked = _unchecked(results, unreachable)

    if any(m.scope == "cluster-wide" for m in matches):
        scope = "cluster-wide"
    elif matches or any(c.status == "fail" for c in results):
        scope = "component"
    else:
        scope = "healthy"

    titles = ", ".join(m.title + (f" ({m.root_cause})" if m.root_cause else "") for m in matches)
    if unreachable is not None:
        headline = f"Cluster-wide failure: {UNREACHABLE_HEADLINE} ({unreachable.facts.get('error', unreachable.summary)})"
    elif scope == "cluster-wide":
        headline = f"Cluster-wide failure: {titles}"
    elif scope == "component":
        failing = ", ".join(c.title or c.name for c in results if c.status == "fail")
        headline = f"No cluster-wide failure; component-level: {titles or failing}"
    else:
        warnings = sum(1 for c in results if c.status == "warn")
        headline = "No cluster-wide failure: no failure pattern matched" + (f", {warnings} warning(s)" if warnings else "")
    missing = [u for u in unchecked if u.status != "skipped" or unreachable is not None]
    if missing:
        headline += f" ({len(missing)} check(s) could not run)"

    notes = list(_notes(results, matches, suppressed, patterns))
    if unreachable is not None and not (checks.get("etcd") and checks["etcd"].finished):
        notes.append("etcd health is unknown: it is read through the API server; set ETCD_ENDPOINTS to check it directly.")
    if matches:
        notes.append(ONE_AT_A_TIME)
    return Verdict(scope, headline, tuple(matches), _recovery(matches), unchecked, tuple(notes))  # type: ignore[arg-type]
