"""The runbook's verdict rules on hand-made check results: patterns, hierarchy, scope, order, unknowns."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from incident.assessment import Assessment, CheckResult
from incident.runbook import PATTERNS, RECOVERY_ORDER, UNREACHABLE_HEADLINE
from incident.verdict import decide, evidence_text, format_value


def ok(name: str, **facts: Any) -> CheckResult:
    return CheckResult(name, "ok", f"{name} ok", facts, 0.1, name)


def result(name: str, status: str, **facts: Any) -> CheckResult:
    return CheckResult(name, status, f"{name} {status}", facts, 0.1, name)  # type: ignore[arg-type]


def healthy() -> dict[str, CheckResult]:
    return {
        "apiserver": ok("apiserver", reachable=True, etcd_ok=True, livez_ok=True, readyz_failed=[], slow=False, degraded=False),
        "etcd": ok("etcd", configured=True, unhealthy=[]),
        "nodes": ok("nodes", total=3, ready=3, not_ready=0, unknown=0, stale_leases=0, pressure=[]),
        "disruption_budgets": ok("disruption_budgets", blocking=[]),
        "kube_system": ok("kube_system", crashlooping=[], restarts_climbing=[], not_ready=[], control_plane_unhealthy=[],
                          stale_leader_leases=[], componentstatus_unhealthy=[]),
        "dns": ok("dns", ready_endpoints_zero=False, ready_replicas_zero=False, degraded=False),
        "pending_pods": ok("pending_pods", pending=0, container_creating=0, unschedulable=0),
        "pod_network": ok("pod_network", ip_exhaustion_events=0, failed_daemonsets=[], unhealthy_daemonsets=[]),
        "ingress": ok("ingress", controllers_unready=[], services_without_endpoints=[], controller_services_without_endpoints=[]),
        "events": ok("events", backoff_objects=[]),
        "certificates": ok("certificates", days_left=300),
    }


def with_(base: dict[str, CheckResult], *changed: CheckResult) -> list[CheckResult]:
    merged = dict(base)
    for item in changed:
        merged[item.name] = CheckResult(item.name, item.status, item.summary, {**base[item.name].facts, **item.facts},
                                        item.duration_s, item.title)
    return list(merged.values())


def test_healthy_cluster_has_no_cluster_wide_failure() -> None:
    verdict = decide(list(healthy().values()))
    assert verdict.scope == "healthy"
    assert verdict.headline.startswith("No cluster-wide failure")
    assert verdict.patterns == () and verdict.recovery == () and verdict.unchecked == ()


def test_unreachable_apiserver_is_a_cluster_wide_control_plane_failure_and_lists_the_unknowns() -> None:
    checks = [result("apiserver", "fail", reachable=False, error="connection refused"),
              result("etcd", "skipped", configured=False)]
    checks += [CheckResult(name, "skipped", "not run: API server unreachable (connection refused)", {}, 0.0, name)
               for name in ("nodes", "kube_system", "dns")]
    verdict = decide(checks)
    assert verdict.scope == "cluster-wide"
    assert UNREACHABLE_HEADLINE in verdict.headline and "connection refused" in verdict.headline
    match = verdict.pattern("control-plane")
    assert match is not None and match.root_cause == "apiserver"
    assert [u.check for u in verdict.unchecked] == ["etcd", "nodes", "kube_system", "dns"]
    assert any("ETCD_ENDPOINTS" in note for note in verdict.notes)
    assert [step.layer for step in verdict.recovery] == ["apiserver"]


def test_control_plane_hierarchy_puts_etcd_first() -> None:
    checks = with_(healthy(),
                   result("apiserver", "fail", etcd_ok=False, etcd_detail="/readyz/etcd HTTP 500",
                          readyz_failed=["etcd (failed)"]),
                   result("kube_system", "fail", stale_leader_leases=["kube-scheduler (300 s ago)"]))
    verdict = decide(checks)
    match = verdict.pattern("control-plane")
    assert match is not None
    assert match.root_cause == "etcd"
    assert [step.layer for step in verdict.recovery] == ["etcd", "apiserver", "scheduler/controller-manager"]
    assert any("etcd unhealthy" in line for line in match.evidence)
    assert verdict.headline == "Cluster-wide failure: Control-plane failure (etcd)"


def test_direct_etcd_failure_alone_names_etcd() -> None:
    verdict = decide(with_(healthy(), result("etcd", "fail", unhealthy=["http://10.0.0.1:2379 (connection refused)"])))
    match = verdict.pattern("control-plane")
    assert match is not None and match.root_cause == "etcd"
    assert "http://10.0.0.1:2379" in match.evidence[0]


def test_slow_apiserver_is_only_a_warning_until_it_is_very_slow() -> None:
    slow = decide(with_(healthy(), result("apiserver", "warn", slow=True, slowest="cheap request 250 ms (> 100 ms)")))
    assert slow.pattern("control-plane") is None
    assert any("apiserver warn" in note for note in slow.notes)
    very = decide(with_(healthy(), result("apiserver", "fail", slow=True, degraded=True, slowest="cheap request 2100 ms")))
    match = very.pattern("control-plane")
    assert match is not None and match.root_cause == "apiserver"
    assert any("very slow" in line for line in match.evidence)


def test_componentstatuses_alone_never_make_a_control_plane_failure() -> None:
    checks = with_(healthy(), result("kube_system", "ok", componentstatus_unhealthy=["scheduler: connection refused"]))
    assert decide(checks).pattern("control-plane") is None


def test_one_node_of_three_is_a_component_level_node_failure() -> None:
    checks = with_(healthy(), result("nodes", "fail", unknown=1, unknown_names=["kwok-node-0"], stale_leases=1,
                                     stale_lease_names=["kwok-node-0 (600 s ago)"]))
    verdict = decide(checks)
    match = verdict.pattern("node-failure")
    assert match is not None and match.scope == "component"
    assert verdict.scope == "component"
    assert verdict.headline.startswith("No cluster-wide failure; component-level: Node failure")
    assert "kwok-node-0" in " ".join(match.evidence)
    assert [step.layer for step in verdict.recovery] == ["infrastructure"]


def test_half_the_nodes_down_is_cluster_wide() -> None:
    checks = with_(healthy(), result("nodes", "fail", total=4, not_ready=1, unknown=1, not_ready_names=["a"], unknown_names=["b"]))
    assert decide(checks).scope == "cluster-wide"


def test_ip_exhaustion_with_pending_pods_and_suppressed_single_workload() -> None:
    checks = with_(healthy(),
                   result("pod_network", "fail", ip_exhaustion_events=3, ip_exhaustion_example="default/checkout: no available IP addresses"),
                   result("pending_pods", "warn", pending=3, container_creating=3, unschedulable=0),
                   result("events", "warn", backoff_objects=["Pod default/other ×2"]))
    verdict = decide(checks)
    assert [p.key for p in verdict.patterns] == ["pod-ip-exhaustion"]
    match = verdict.patterns[0]
    assert match.scope == "cluster-wide" and match.layer == "infrastructure"
    assert any("3 pod(s) stuck in ContainerCreating" in line for line in match.evidence)
    assert any("probably a consequence" in note and "Pod default/other" in note for note in verdict.notes)


def test_dns_cascade() -> None:
    checks = with_(healthy(), result("dns", "fail", ready_endpoints_zero=True, ready_replicas_zero=True,
                                     endpoints_detail="0 of 2 endpoint(s) ready", deployments_detail="coredns 0/2 ready"))
    verdict = decide(checks)
    match = verdict.pattern("dns-cascade")
    assert match is not None and match.scope == "cluster-wide"
    assert verdict.headline == "Cluster-wide failure: DNS cascade"
    assert [step.layer for step in verdict.recovery] == ["dns/ingress"]
    assert any("fix DNS before any application" in line for line in match.advice)


def test_crash_loop_in_kube_system_is_a_single_workload() -> None:
    checks = with_(healthy(), result("kube_system", "fail", crashlooping=["metrics-server-abc (4 restarts)"]),
                   result("events", "warn", backoff_objects=["Pod kube-system/metrics-server-abc ×4"]))
    verdict = decide(checks)
    assert [p.key for p in verdict.patterns] == ["single-workload"]
    assert verdict.scope == "component"
    assert [step.layer for step in verdict.recovery] == ["applications"]


def test_recovery_follows_the_runbook_order_across_patterns() -> None:
    checks = with_(healthy(),
                   result("dns", "fail", ready_endpoints_zero=True),
                   result("nodes", "fail", not_ready=2, not_ready_names=["a", "b"]),
                   result("apiserver", "fail", readyz_failed=["informer-sync (failed)"]))
    verdict = decide(checks)
    assert [step.layer for step in verdict.recovery] == ["infrastructure", "apiserver", "dns/ingress"]
    assert [step.order for step in verdict.recovery] == [1, 2, 3]
    order = [layer.key for layer in RECOVERY_ORDER]
    assert [step.layer for step in verdict.recovery] == sorted((s.layer for s in verdict.recovery), key=order.index)
    assert any("one thing at a time" in note for note in verdict.notes)


def test_timed_out_checks_are_listed_never_dropped() -> None:
    base = healthy()
    base["events"] = CheckResult("events", "timeout", "did not finish within its 40 s timeout", {}, 40.0, "Warning events")
    verdict = decide(list(base.values()))
    assert [(u.check, u.status) for u in verdict.unchecked] == [("events", "timeout")]
    assert "1 check(s) could not run" in verdict.headline


def test_pattern_evidence_formats_lists_with_a_count_of_the_rest() -> None:
    assert format_value(["a", "b", "c", "d", "e", "f", "g"], limit=3) == "a, b, c and 4 more"
    assert format_value(["a", "b", "… 10 more"], limit=5) == "a, b and 10 more"
    assert evidence_text("{missing} and {n}", {"n": 3}) == "? and 3"


def test_every_pattern_names_a_known_layer_and_has_advice() -> None:
    layers = {layer.key for layer in RECOVERY_ORDER}
    for pattern in PATTERNS:
        assert pattern.layer in layers and pattern.advice
        assert all(signal.layer is None or signal.layer in layers for signal in pattern.signals)


def test_snapshot_round_trips_through_json_for_the_timeline() -> None:
    checks = with_(healthy(), result("dns", "fail", ready_endpoints_zero=True))
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assessment = Assessment("prod", moment, moment, 60.0, checks, decide(checks), server="https://x")
    data = assessment.to_json()
    assert data["verdict"]["patterns"][0]["title"] == "DNS cascade"  # what the post-mortem reads
    assert {c["name"]: c["status"] for c in data["checks"]}["dns"] == "fail"
    again = Assessment.from_json(data)
    assert again.verdict == assessment.verdict
    assert again.checks == assessment.checks
