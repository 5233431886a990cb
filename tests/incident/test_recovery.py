"""The guided-recovery plan on hand-made check results: every pattern's first step and target, the order
of the layers, done steps, forged and waiting buttons, and the delta between two assessments."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from incident.action_kinds import action_specs
from incident.assessment import Assessment, CheckResult
from incident.errors import ConfirmationError
from incident.recovery import RUNBOOK_STEPS, build_plan, delta, plan_step
from incident.runbook import PATTERNS, RECOVERY_ORDER
from incident.templates import renderer_for
from incident.verdict import decide
from tests.incident.test_verdict import healthy, result, with_

TEMPLATES = renderer_for(None)

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)


def assessment(checks: list[CheckResult]) -> Assessment:
    return Assessment("default", NOW, NOW, 60.0, checks, decide(checks))


def node_failure() -> Assessment:
    return assessment(with_(healthy(), result(
        "nodes", "fail", total=3, ready=2, unknown=1, unknown_names=["kwok-node-2"], not_ready_names=[],
        stale_leases=1, stale_lease_names=["kwok-node-2 (300 s ago)"], cordoned_names=[])))


def ip_exhaustion() -> Assessment:
    return assessment(with_(healthy(), result(
        "pod_network", "fail", ip_exhaustion_events=12, ip_exhaustion_example="shop/web-1: failed to assign an IP",
        cni=["kube-system/aws-node 3/3 ready"], failed_daemonsets=[], unhealthy_daemonsets=[])))


def dns_cascade() -> Assessment:
    return assessment(with_(healthy(), result(
        "dns", "fail", ready_endpoints_zero=True, ready_replicas_zero=True, endpoints_detail="0 of 2 endpoint(s) ready",
        deployments=[{"name": "coredns", "desired": 2, "ready": 0, "available": 0}],
        deployments_detail="coredns 0/2 ready")))


def crash_loop(workload: str = "Deployment/metrics-server") -> Assessment:
    return assessment(with_(healthy(), result(
        "kube_system", "fail", crashlooping=["metrics-server-abc (7 restarts)"], crashlooping_workloads=[workload])))


def control_plane_slow() -> Assessment:
    return assessment(with_(healthy(), result("apiserver", "fail", degraded=True, slow=True,
                                              slowest="GET /api (2400 ms) (> 100 ms)")))


def cni_failure() -> Assessment:
    return assessment(with_(healthy(), result(
        "pod_network", "fail", failed_daemonsets=["kube-system/calico-node 0/3 ready"],
        unhealthy_daemonsets=["kube-system/calico-node 0/3 ready"], cni=["kube-system/calico-node 0/3 ready"])))


@pytest.mark.parametrize(("build", "first"), [
    (node_failure, "cordon node kwok-node-2"),
    (ip_exhaustion, "restart daemonset kube-system/aws-node"),
    (cni_failure, "restart daemonset kube-system/calico-node"),
    (dns_cascade, "restart deployment kube-system/coredns"),
    (crash_loop, "restart deployment kube-system/metrics-server"),
])
def test_every_scenario_names_the_right_first_step_and_target(build, first) -> None:
    plan = build_plan(build(), "r1")
    assert plan.primary is not None and plan.primary.description == first
    assert plan.primary.number == 1


def test_node_failure_isolates_the_node_in_the_runbook_order() -> None:
    plan = build_plan(node_failure(), "r1")
    assert [s.description for s in plan.steps] == [
        "cordon node kwok-node-2", "drain node kwok-node-2 --timeout 60", "delete node kwok-node-2"]
    assert all(s.layer == "infrastructure" for s in plan.steps)
    assert [s.description for s in plan.offered()] == [s.description for s in plan.steps]


def test_a_notready_node_is_cordoned_and_drained_but_not_deleted() -> None:
    checks = with_(healthy(), result("nodes", "fail", total=3, not_ready=1, not_ready_names=["n1"], unknown_names=[]))
    plan = build_plan(assessment(checks), "r1")
    assert [s.kind for s in plan.steps] == ["cordon", "drain"]


def test_an_already_cordoned_node_starts_with_the_drain() -> None:
    checks = with_(healthy(), result("nodes", "fail", total=3, unknown=1, unknown_names=["n1"], cordoned_names=["n1"]))
    plan = build_plan(assessment(checks), "r1")
    assert plan.primary is not None and plan.primary.kind == "drain"


def test_done_steps_are_kept_but_the_next_open_step_becomes_primary() -> None:
    plan = build_plan(node_failure(), "r1", done=["cordon node kwok-node-2"])
    assert plan.steps[0].done
    assert plan.primary is not None and plan.primary.kind == "drain"
    with pytest.raises(ConfirmationError, match="already succeeded"):
        plan_step(plan, 1, "cordon", "kwok-node-2", TEMPLATES)


def test_lower_layer_first_and_higher_layers_wait_for_it() -> None:
    checks = with_(healthy(),
                   result("nodes", "fail", total=3, unknown=1, unknown_names=["n1"], cordoned_names=[]),
                   result("dns", "fail", ready_endpoints_zero=True, ready_replicas_zero=True,
                          deployments=[{"name": "coredns", "desired": 2, "ready": 0}]))
    plan = build_plan(assessment(checks), "r1")
    assert plan.current_layer == "infrastructure"
    dns = next(s for s in plan.steps if s.pattern == "dns-cascade")
    assert dns.number == len(plan.steps)
    assert plan.waits_for(dns) == RECOVERY_ORDER[0].title
    assert dns not in plan.offered()
    with pytest.raises(ConfirmationError, match="waits for"):
        plan_step(plan, dns.number, "restart", "kube-system/coredns", TEMPLATES)


def test_a_crash_looping_coredns_is_dns_work_not_an_application() -> None:
    plan = build_plan(crash_loop("Deployment/coredns"), "r1")
    assert plan.primary is not None and plan.primary.layer == "dns/ingress"


def test_control_plane_steps_are_manual_and_hold_everything_else_back() -> None:
    checks = with_(healthy(), result("apiserver", "fail", degraded=True, slowest="GET /api (2400 ms)"),
                   result("dns", "fail", ready_endpoints_zero=True, ready_replicas_zero=True,
                          deployments=[{"name": "coredns", "desired": 2, "ready": 0}]))
    plan = build_plan(assessment(checks), "r1")
    assert plan.steps[0].manual and plan.steps[0].layer == "apiserver"
    assert plan.primary is None and plan.offered() == ()
    dns = plan.steps[-1]
    assert plan.waits_for(dns) == "API server"


def test_control_plane_slow_plan_names_the_apiserver_only() -> None:
    plan = build_plan(control_plane_slow(), "r1")
    assert [(s.layer, s.manual) for s in plan.steps] == [("apiserver", True)]


def test_a_forged_button_targeting_another_object_is_refused() -> None:
    plan = build_plan(node_failure(), "r1")
    assert plan_step(plan, 1, "cordon", "kwok-node-2", TEMPLATES).target == "kwok-node-2"
    for number, kind, target in [(1, "cordon", "kwok-node-0"), (1, "delete-node", "kwok-node-2"), (9, "cordon", "x"),
                                 (3, "delete-node", "kwok-node-0")]:
        with pytest.raises(ConfirmationError, match="does not match"):
            plan_step(plan, number, kind, target, TEMPLATES)


def test_a_healthy_cluster_has_no_plan() -> None:
    plan = build_plan(assessment(list(healthy().values())), "r1")
    assert plan.steps == () and plan.primary is None


def test_every_step_rule_names_a_known_kind_and_every_pattern_key_exists() -> None:
    kinds = set(action_specs().kinds)
    keys = {p.key for p in PATTERNS}
    for key, rules in RUNBOOK_STEPS.items():
        assert key in keys
        for rule in rules:
            assert rule.kind in kinds or (not rule.kind and rule.layer)


def test_every_step_description_parses_back_into_its_own_step() -> None:
    for plan in (build_plan(build(), "r") for build in (node_failure, ip_exhaustion, dns_cascade, crash_loop)):
        for step in plan.steps:
            matched = action_specs().match(step.description)
            assert matched is not None and matched[0].kind == step.kind and matched[1].target == step.target


def test_delta_after_a_step_that_helped() -> None:
    change = delta(dns_cascade(), assessment(list(healthy().values())))
    assert change.cleared == ("DNS cascade",) and change.new == () and change.still_failing == ()
    assert change.helped and change.healthy and not change.worse


def test_delta_flags_a_step_that_made_things_worse() -> None:
    both = assessment(with_(healthy(),
                            result("dns", "fail", ready_endpoints_zero=True, ready_replicas_zero=True),
                            result("nodes", "fail", total=3, unknown=1, unknown_names=["n1"])))
    change = delta(dns_cascade(), both)
    assert change.worse and "Node failure" in change.new and "DNS cascade" in change.still_failing
    assert not change.helped


def test_delta_says_still_failing_when_nothing_changed() -> None:
    change = delta(dns_cascade(), dns_cascade())
    assert change.cleared == () and change.new == () and not change.worse and not change.healthy


def test_a_restore_reapplies_only_the_labels_and_taints_people_set() -> None:
    from incident.recovery import restore_params

    params = restore_params({"zone": "eu-1a", "node-role.kubernetes.io/db": "", "kubernetes.io/hostname": "n1",
                             "topology.kubernetes.io/zone": "eu-west-1a"}, [
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}])
    assert params == {"labels": {"node-role.kubernetes.io/db": "", "zone": "eu-1a"},
                      "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}
    typed = action_specs().get("restore-node").describe("n1", params)
    assert typed == "restore node n1 node-role.kubernetes.io/db= zone=eu-1a --taint dedicated=db:NoSchedule"
    assert action_specs().match(typed)[1].params == params


@pytest.mark.parametrize(("typed", "problem"), [
    ("restore node n1", "at least one label"),
    ("restore node n1 zone", "is not `key=value`"),
    ("restore node n1 --taint dedicated=db:Sometimes", "is not a taint"),
    ("restore node n1 --taint", "needs `key=value:effect`"),
    ("restore node N_1 zone=a", "not a valid node name"),
])
def test_restore_node_bad_input_is_named(typed: str, problem: str) -> None:
    from incident.errors import CommandError

    spec = action_specs().get("restore-node")
    with pytest.raises(CommandError, match=problem):
        spec.parse(typed.split()[2:])


def test_a_step_done_in_an_earlier_episode_of_its_pattern_is_offered_again() -> None:
    from incident.recovery import episode_starts

    history = [(100.0, {"dns-cascade"}), (200.0, set()), (300.0, {"dns-cascade"})]
    assert episode_starts(history, {"dns-cascade"}, 400.0) == {"dns-cascade": 300.0}
    assert episode_starts(history[:2], {"dns-cascade"}, 400.0) == {"dns-cascade": 400.0}  # new: starts now
    done = {"restart deployment kube-system/coredns": 150.0}
    again = build_plan(dns_cascade(), "r", done, {"dns-cascade": 300.0})
    assert again.primary is not None and again.primary.description == "restart deployment kube-system/coredns"
    same_episode = build_plan(dns_cascade(), "r", done, {"dns-cascade": 100.0})
    assert same_episode.steps[0].done and same_episode.primary is None


# -- the early look after a step ----------------------------------------------------------------------


def test_the_early_look_runs_the_checks_that_decide_the_pattern_and_the_apiserver() -> None:
    from incident.recovery import deciding_checks

    assert deciding_checks("dns-cascade") == ("apiserver", "dns")
    assert deciding_checks("pod-ip-exhaustion") == ("apiserver", "pod_network", "pending_pods")
    assert deciding_checks("node-failure") == ("apiserver", "nodes", "disruption_budgets")
    for pattern in PATTERNS:  # every signal's check is in its pattern's early look, each once
        names = deciding_checks(pattern.key)
        assert {s.check for s in pattern.signals} <= set(names) and len(names) == len(set(names))


def test_the_early_look_says_cleared_or_still_failing_from_the_first_checks_only() -> None:
    from incident.recovery import early_delta

    def first(checks: Assessment) -> list[CheckResult]:
        return [c for c in checks.checks if c.name in ("apiserver", "dns")]

    still = early_delta("dns-cascade", first(dns_cascade()))
    assert not still.cleared and still.still_failing == ("dns",) and still.pattern_title == "DNS cascade"
    cleared = early_delta("dns-cascade", first(assessment(list(healthy().values()))))
    assert cleared.cleared and cleared.still_failing == () and cleared.unfinished == ()
    timed_out = [CheckResult("apiserver", "ok", "ok", {"reachable": True}), CheckResult("dns", "timeout", "slow")]
    undecided = early_delta("dns-cascade", timed_out)
    assert not undecided.cleared and undecided.unfinished == ("dns",)  # a check that did not finish clears nothing
