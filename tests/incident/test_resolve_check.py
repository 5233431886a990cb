"""The runbook's recovery checklist, judged from assessments built the way the checks report them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from incident.assessment import Assessment, CheckResult
from incident.resolve_check import checklist_passed, resolve_checklist
from incident.verdict import decide

MOMENT = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def healthy_checks(**events_facts: Any) -> list[CheckResult]:
    events = {"total": 0, "current_total": 0, "gone_total": 0, "top_offenders": [], "current_offenders": [],
              "gone_objects": [], **events_facts}
    return [
        CheckResult("nodes", "ok", "3/3 Ready", {"total": 3, "ready": 3, "not_ready": 0, "unknown": 0}),
        CheckResult("kube_system", "ok", "8 pods running", {"pods": 8, "not_running": [], "crashlooping": []}),
        CheckResult("dns", "ok", "2 endpoints ready", {"ready_endpoints": 2, "endpoints_detail": "2/2 ready"}),
        CheckResult("apiserver", "ok", "reachable", {"reachable": True, "latency_ms": 12.0}),
        CheckResult("events", "warn" if events["total"] else "ok", "events", events),
    ]


def checklist(checks: list[CheckResult]) -> dict[str, tuple[bool, str]]:
    assessment = Assessment("prod", MOMENT, MOMENT, 60.0, checks, decide(checks))
    items = resolve_checklist(assessment)
    return {item.name: (item.passed, item.detail) for item in items}


EVENTS_ITEM = "No new Warning events in the last 10 min"


def test_a_recovered_cluster_passes_every_item() -> None:
    items = checklist(healthy_checks())
    assert all(passed for passed, _ in items.values()), items
    assert list(items) == ["All nodes Ready", "kube-system pods Running", "DNS answering (CoreDNS endpoints ready)",
                           "API latency under 100 ms", EVENTS_ITEM]


def test_warnings_about_deleted_objects_do_not_hold_the_resolve_back_but_are_shown() -> None:
    items = checklist(healthy_checks(total=1, gone_total=1, gone_objects=["Pod kube-system/aws-node-4bjjk ×1"],
                                     top_offenders=["Pod kube-system/aws-node-4bjjk: FailedScheduling ×1"]))
    assert items[EVENTS_ITEM] == (True, "none (1 more about objects deleted since, not counted)")


def test_current_warnings_fail_the_item_and_name_the_live_offenders_only() -> None:
    items = checklist(healthy_checks(total=5, current_total=3, gone_total=2,
                                     current_offenders=["Pod default/api-1: BackOff ×3"],
                                     top_offenders=["Pod default/api-1: BackOff ×3", "Pod default/old: BackOff ×2"]))
    passed, detail = items[EVENTS_ITEM]
    assert not passed
    assert detail == "3 Warning event(s): Pod default/api-1: BackOff ×3 (2 more about objects deleted since, not counted)"


def test_an_assessment_stored_before_the_split_counts_every_warning() -> None:
    checks = healthy_checks()
    checks[-1] = CheckResult("events", "warn", "2 Warning event(s)", {"total": 2, "top_offenders": ["Pod a/b: BackOff ×2"]})
    assert checklist(checks)[EVENTS_ITEM] == (False, "2 Warning event(s): Pod a/b: BackOff ×2")


def test_a_check_that_did_not_finish_is_not_verified_never_passed() -> None:
    checks = healthy_checks()
    checks[2] = CheckResult("dns", "timeout", "did not finish within its 10 s timeout")
    del checks[4]
    items = checklist(checks)
    assert items["DNS answering (CoreDNS endpoints ready)"] == (
        False, "not verified: check timeout (did not finish within its 10 s timeout)")
    assert items[EVENTS_ITEM] == (False, "not verified: the check did not run")
    assessment = Assessment("prod", MOMENT, MOMENT, 60.0, checks, decide(checks))
    assert not checklist_passed(resolve_checklist(assessment))


def test_not_ready_nodes_and_slow_api_are_named() -> None:
    checks = healthy_checks()
    checks[0] = CheckResult("nodes", "fail", "1 NotReady", {"total": 3, "ready": 2, "not_ready": 1, "unknown": 0,
                                                             "not_ready_names": ["n2"]})
    checks[3] = CheckResult("apiserver", "warn", "slow", {"reachable": True, "latency_ms": 250.0})
    items = checklist(checks)
    assert items["All nodes Ready"] == (False, "1 node(s) not Ready: n2")
    assert items["API latency under 100 ms"] == (False, "250 ms")
