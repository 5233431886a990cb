"""No premature victory: the runbook's post-recovery checklist, judged from an assessment (pure).

Before an incident may be resolved: all nodes Ready, kube-system pods Running, DNS answering
(CoreDNS endpoints ready), API latency under 100 ms, no new Warning events in the last 10 minutes
(events about objects deleted since — a pod of a removed node, a replaced ReplicaSet's pod — are shown,
not counted: they describe the past, not the cluster as it is).
A check that could not run counts as *not verified*, never as passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from incident.assessment import Assessment, CheckResult

RESOLVE_EVENT_WINDOW_MINUTES = 10
LATENCY_LIMIT_MS = 100.0


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the checklist: passed or not, and what was seen."""

    name: str
    passed: bool
    detail: str


def _missing(name: str, check: CheckResult | None) -> ChecklistItem | None:
    if check is None:
        return ChecklistItem(name, False, "not verified: the check did not run")
    if not check.finished:
        return ChecklistItem(name, False, f"not verified: check {check.status} ({check.summary})")
    return None


def _nodes(check: CheckResult | None) -> ChecklistItem:
    name = "All nodes Ready"
    if (missing := _missing(name, check)) is not None:
        return missing
    assert check is not None
    facts: dict[str, Any] = check.facts
    bad = int(facts.get("not_ready") or 0) + int(facts.get("unknown") or 0)
    names = list(facts.get("not_ready_names") or []) + list(facts.get("unknown_names") or [])
    if bad:
        return ChecklistItem(name, False, f"{bad} node(s) not Ready: {', '.join(map(str, names))}")
    return ChecklistItem(name, True, f"{facts.get('ready', '?')}/{facts.get('total', '?')} Ready")


def _kube_system(check: CheckResult | None) -> ChecklistItem:
    name = "kube-system pods Running"
    if (missing := _missing(name, check)) is not None:
        return missing
    assert check is not None
    bad = sorted(set(check.facts.get("not_running") or []) | set(check.facts.get("crashlooping") or []))
    if bad:
        return ChecklistItem(name, False, "not running: " + ", ".join(map(str, bad)))
    return ChecklistItem(name, True, f"{check.facts.get('pods', '?')} pods running")


def _dns(check: CheckResult | None) -> ChecklistItem:
    name = "DNS answering (CoreDNS endpoints ready)"
    if (missing := _missing(name, check)) is not None:
        return missing
    assert check is not None
    ready = int(check.facts.get("ready_endpoints") or 0)
    if check.status == "fail" or ready == 0:
        return ChecklistItem(name, False, check.summary)
    return ChecklistItem(name, True, str(check.facts.get("endpoints_detail") or check.summary))


def _latency(check: CheckResult | None) -> ChecklistItem:
    name = f"API latency under {LATENCY_LIMIT_MS:.0f} ms"
    if (missing := _missing(name, check)) is not None:
        return missing
    assert check is not None
    latency = check.facts.get("latency_ms")
    if not check.facts.get("reachable", True) or latency is None:
        return ChecklistItem(name, False, check.summary)
    if float(latency) >= LATENCY_LIMIT_MS:
        return ChecklistItem(name, False, f"{float(latency):.0f} ms")
    return ChecklistItem(name, True, f"{float(latency):.0f} ms")


def _events(check: CheckResult | None) -> ChecklistItem:
    name = f"No new Warning events in the last {RESOLVE_EVENT_WINDOW_MINUTES} min"
    if (missing := _missing(name, check)) is not None:
        return missing
    assert check is not None
    facts = check.facts
    if "current_total" not in facts:  # an assessment stored before deleted objects were told apart
        facts = {**facts, "current_total": facts.get("total"), "current_offenders": facts.get("top_offenders")}
    current, gone = int(facts.get("current_total") or 0), int(facts.get("gone_total") or 0)
    history = f" ({gone} more about objects deleted since, not counted)" if gone else ""
    if current:
        offenders = ", ".join(map(str, facts.get("current_offenders") or []))
        return ChecklistItem(name, False, f"{current} Warning event(s): {offenders}{history}")
    return ChecklistItem(name, True, f"none{history}")


def resolve_checklist(assessment: Assessment) -> list[ChecklistItem]:
    """The checklist, in the runbook's order."""
    return [
        _nodes(assessment.check("nodes")),
        _kube_system(assessment.check("kube_system")),
        _dns(assessment.check("dns")),
        _latency(assessment.check("apiserver")),
        _events(assessment.check("events")),
    ]


def checklist_passed(items: list[ChecklistItem]) -> bool:
    return all(item.passed for item in items)
