"""The assessment on the real local control plane: healthy, every runbook scenario, a slow and a dead apiserver.

Each test breaks the session cluster with a scenario from :mod:`sandbox.scenarios` (undone afterwards) and
runs the production assessment (the real checks, the real client) against it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
import pytest
import yaml
from kubernetes import client as k8s

from incident.assessment import Assessment
from incident.runbook import UNREACHABLE_HEADLINE
from incident.settings import Settings
from kube.assessor import assess
from kube.checks import CheckContext
from kube.checks.events import check_events, check_events_telling_deleted_apart
from kube.client import KubeApi, RequestRecord
from sandbox.cluster import LocalCluster
from sandbox.objects import record_event, wait_for
from sandbox.proxy import FaultProxy
from sandbox.scenarios import (
    ApiserverDown,
    ApiserverUnreachable,
    BlockingPdb,
    CrashLoop,
    DnsOutage,
    NodeFailure,
    PodIpExhaustion,
    SlowApiserver,
)
from tests.fixtures.cluster import ScenarioRunner
from k8s_incident_bot.assess import assess_command

pytestmark = pytest.mark.cluster


@pytest.fixture()
def settings(k8s_cluster: LocalCluster, kubeconfig: Path) -> Settings:
    assert k8s_cluster.ports is not None
    return Settings(kubeconfig=kubeconfig, etcd_endpoints=[f"http://127.0.0.1:{k8s_cluster.ports.etcd_client}"],
                    cluster_name="sandbox")


@pytest.fixture()
def proxy(k8s_cluster: LocalCluster) -> Iterator[FaultProxy]:
    assert k8s_cluster.ports is not None
    with FaultProxy("127.0.0.1", k8s_cluster.ports.apiserver) as running:
        yield running


@pytest.fixture()
def proxied(settings: Settings, k8s_cluster: LocalCluster, proxy: FaultProxy, tmp_path: Path) -> Settings:
    """Settings whose kubeconfig reaches the apiserver through the fault proxy."""
    path = k8s_cluster.write_kubeconfig(tmp_path / "proxied.kubeconfig", server=proxy.url)
    return settings.model_copy(update={"kubeconfig": path})


def run(settings: Settings) -> tuple[Assessment, float]:
    started = time.monotonic()
    assessment = assess(settings)
    return assessment, time.monotonic() - started


def patterns(assessment: Assessment) -> list[str]:
    return [p.key for p in assessment.verdict.patterns]


def test_healthy_cluster_has_no_cluster_wide_failure(settings: Settings, settled_cluster: k8s.ApiClient) -> None:
    assessment, elapsed = run(settings)
    verdict = assessment.verdict
    assert verdict.scope != "cluster-wide", verdict.headline
    assert verdict.headline.startswith("No cluster-wide failure"), verdict.headline
    assert not [p for p in verdict.patterns if p.scope == "cluster-wide"]
    statuses = {c.name: c.status for c in assessment.checks}
    assert statuses["apiserver"] in ("ok", "warn") and statuses["etcd"] == "ok"
    assert statuses["nodes"] == statuses["dns"] == statuses["pod_network"] == statuses["certificates"] == "ok", statuses
    assert verdict.unchecked == ()
    nodes = assessment.check("nodes")
    assert nodes is not None and nodes.facts["ready"] >= 3 and nodes.facts["stale_leases"] == 0
    assert elapsed < settings.assessment_budget_seconds


def test_node_failure(settings: Settings, scenarios: ScenarioRunner) -> None:
    # The verdict does not depend on the failed node's pods being evicted; leaving them keeps the undo quick.
    handle = scenarios.apply(NodeFailure(count=1, terminate_pods=False))
    failed = handle.details["nodes"][0]
    assessment, _ = run(settings)
    match = assessment.verdict.pattern("node-failure")
    assert match is not None, assessment.verdict.headline
    assert any(failed in line for line in match.evidence)
    assert any("stale" in line for line in match.evidence)
    assert assessment.verdict.recovery[0].layer == "infrastructure"
    assert any("Cordon" in line for line in match.advice)
    assert patterns(assessment)[0] == "node-failure"


def test_pod_ip_exhaustion(settings: Settings, scenarios: ScenarioRunner) -> None:
    scenarios.apply(PodIpExhaustion())
    assessment, _ = run(settings)
    match = assessment.verdict.pattern("pod-ip-exhaustion")
    assert match is not None, assessment.verdict.headline
    assert assessment.verdict.scope == "cluster-wide"
    assert any("no available IP addresses" in line or "pod IPs" in line for line in match.evidence)
    assert any("ContainerCreating" in line for line in match.evidence)
    assert assessment.verdict.recovery[0].layer == "infrastructure"
    assert any("prefix delegation" in line for line in match.advice)
    assert "single-workload" not in patterns(assessment)


def test_dns_cascade(settings: Settings, scenarios: ScenarioRunner) -> None:
    scenarios.apply(DnsOutage())
    assessment, _ = run(settings)
    match = assessment.verdict.pattern("dns-cascade")
    assert match is not None, assessment.verdict.headline
    assert assessment.verdict.headline.startswith("Cluster-wide failure: DNS cascade")
    assert any("no ready endpoints" in line for line in match.evidence)
    assert [s.layer for s in assessment.verdict.recovery] == ["dns/ingress"]


def test_crash_looping_kube_system_component(settings: Settings, scenarios: ScenarioRunner) -> None:
    handle = scenarios.apply(CrashLoop(interval=1.0))
    time.sleep(2.5)  # a few more crashes: restarts climb
    handle.tick()  # type: ignore[attr-defined]
    assessment, _ = run(settings)
    match = assessment.verdict.pattern("single-workload")
    assert match is not None, assessment.verdict.headline
    assert assessment.verdict.scope == "component"
    assert any("metrics-server" in line and "CrashLoopBackOff" in line for line in match.evidence)
    assert any("BackOff events" in line for line in match.evidence)
    assert [s.layer for s in assessment.verdict.recovery] == ["applications"]


def test_blocking_pdb_is_reported_for_drains(settings: Settings, scenarios: ScenarioRunner) -> None:
    scenarios.apply(BlockingPdb())
    assessment, _ = run(settings)
    budgets = assessment.check("disruption_budgets")
    assert budgets is not None and budgets.status == "warn"
    assert any("payments" in item for item in budgets.facts["blocking"])
    assert assessment.verdict.scope != "cluster-wide"
    assert any("draining their nodes will stall" in note for note in assessment.verdict.notes)


def test_node_failure_with_a_blocking_pdb_warns_that_drains_stall(settings: Settings, scenarios: ScenarioRunner) -> None:
    scenarios.apply(BlockingPdb())
    scenarios.apply(NodeFailure(count=1, terminate_pods=False))
    assessment, _ = run(settings)
    match = assessment.verdict.pattern("node-failure")
    assert match is not None
    assert any("PodDisruptionBudgets allowing no disruption" in line for line in match.evidence)


def test_slow_apiserver_is_a_control_plane_problem(proxied: Settings, proxy: FaultProxy, scenarios: ScenarioRunner) -> None:
    scenarios.apply(SlowApiserver(proxy, latency=1.5))
    assessment, elapsed = run(proxied)
    match = assessment.verdict.pattern("control-plane")
    assert match is not None, assessment.verdict.headline
    assert match.root_cause == "apiserver"
    assert any("very slow" in line for line in match.evidence)
    assert elapsed < proxied.assessment_budget_seconds + 1


def test_stopped_apiserver_is_control_plane_unreachable_inside_the_deadline(
        settings: Settings, k8s_cluster: LocalCluster, scenarios: ScenarioRunner, k8s_api: k8s.ApiClient) -> None:
    scenarios.apply(ApiserverDown(k8s_cluster))
    assessment, elapsed = run(settings)
    verdict = assessment.verdict
    assert elapsed < settings.assessment_budget_seconds
    assert verdict.scope == "cluster-wide"
    assert UNREACHABLE_HEADLINE in verdict.headline and "connection refused" in verdict.headline
    match = verdict.pattern("control-plane")
    assert match is not None and match.root_cause == "apiserver"
    etcd = assessment.check("etcd")
    assert etcd is not None and etcd.status == "ok"  # the direct probe still sees etcd: the apiserver is the root
    unchecked = {u.check for u in verdict.unchecked}
    assert {"nodes", "kube_system", "dns", "pending_pods", "events"} <= unchecked
    assert all(c.status != "timeout" for c in assessment.checks)


def test_blackholed_apiserver_is_unreachable_within_the_probe_timeout(proxied: Settings, proxy: FaultProxy,
                                                                      scenarios: ScenarioRunner) -> None:
    scenarios.apply(ApiserverUnreachable(proxy, mode="blackhole"))
    assessment, elapsed = run(proxied)
    assert UNREACHABLE_HEADLINE in assessment.verdict.headline
    assert elapsed < 15, elapsed  # the 10 s reachability probe, not the 30 s request timeout or the 60 s budget
    assert {u.check for u in assessment.verdict.unchecked} >= {"nodes", "dns", "events"}


def test_cli_prints_a_table_and_json(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = assess_command(settings, as_json=False, out=out, err=err)
    assert code in (0, 1)
    assert "VERDICT: No cluster-wide failure" in out.getvalue()
    assert "OK" in err.getvalue()
    out = io.StringIO()
    assess_command(settings, as_json=True, out=out, err=io.StringIO())
    snapshot = yaml.safe_load(out.getvalue())
    assert {c["name"] for c in snapshot["checks"]} >= {"apiserver", "nodes", "dns", "events", "certificates"}
    assert snapshot["verdict"]["scope"] in ("healthy", "component")


def test_warning_events_about_deleted_pods_are_told_apart_from_current_ones(k8s_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(k8s_api)
    pods = {}
    for name in ("still-here", "deleted-since"):
        pods[name] = core.create_namespaced_pod(namespace, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}})
        record_event(k8s_api, pods[name], reason="BackOff", message="Back-off restarting failed container app",
                     count=5000 if name == "still-here" else 4000)  # large counts: the top of every list
    core.delete_namespaced_pod("deleted-since", namespace, grace_period_seconds=0)
    wait_for("deleted-since gone", lambda: not core.list_namespaced_pod(
        namespace, field_selector="metadata.name=deleted-since").items, timeout=30)
    # A pod re-created under the same name is a different object: its predecessor's events stay "deleted since".
    core.create_namespaced_pod(namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "deleted-since"},
                                           "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}})

    plain_requests: list[RequestRecord] = []
    plain = check_events(CheckContext(kube=KubeApi(k8s_api, recorder=plain_requests)))
    assert plain.facts["gone_total"] == 0  # the regular assessment makes no per-object request …
    assert {record.path for record in plain_requests} == {"/api/v1/events"}

    finding = check_events_telling_deleted_apart(CheckContext(kube=KubeApi(k8s_api)))  # … the resolve validation does
    facts = finding.facts
    assert facts["gone_objects"][0] == f"Pod {namespace}/deleted-since ×4000", facts
    assert facts["current_offenders"][0] == f"Pod {namespace}/still-here: BackOff ×5000", facts
    assert facts["gone_total"] >= 4000 and facts["current_total"] >= 5000
    assert facts["total"] == facts["gone_total"] + facts["current_total"]
    assert "about objects deleted since" in finding.summary
