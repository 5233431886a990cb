"""Every scenario breaks the real cluster the way the runbook describes, visible through the API, and undo heals it."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from sandbox.baseline import (
    AWS_NODE,
    COREDNS,
    COREDNS_LABELS,
    KUBE_DNS_SERVICE,
    SYSTEM_NAMESPACE,
    aws_node_ready,
    coredns_healthy,
)
from sandbox.cluster import LocalCluster
from sandbox.objects import container, deployment, pod_ready, pod_template, pods_matching, ready_endpoint_count, wait_for
from sandbox.proxy import FaultProxy
from sandbox.scenarios import (
    ApiserverDown,
    ApiserverUnreachable,
    BlockingPdb,
    CrashLoop,
    DnsOutage,
    NodeFailure,
    PodIpExhaustion,
    Scale,
    SlowApiserver,
)
from tests.fixtures.cluster import ScenarioRunner

pytestmark = pytest.mark.cluster


def _events(api: k8s.ApiClient, namespace: str, reason: str) -> list[k8s.CoreV1Event]:
    return list(k8s.CoreV1Api(api).list_namespaced_event(namespace, field_selector=f"reason={reason}").items)


def test_baseline_is_healthy(k8s_api: k8s.ApiClient) -> None:
    assert coredns_healthy(k8s_api, replicas=2)
    assert ready_endpoint_count(k8s_api, SYSTEM_NAMESPACE, KUBE_DNS_SERVICE) == 2
    assert aws_node_ready(k8s_api)


def test_node_failure_goes_unknown_taints_and_leaves_pods_terminating(
    k8s_api: k8s.ApiClient, namespace: str, scenarios: ScenarioRunner
) -> None:
    core = k8s.CoreV1Api(k8s_api)
    labels = {"app": "victim"}
    k8s.AppsV1Api(k8s_api).create_namespaced_deployment(
        namespace, deployment("victim", namespace, 2, pod_template(labels, [container("app", "registry.k8s.io/pause:3.10")]))
    )
    wait_for("victim pods ready", lambda: sum(pod_ready(p) for p in pods_matching(k8s_api, namespace, labels)) == 2, 60)
    victim = pods_matching(k8s_api, namespace, labels)[0]
    node = victim.spec.node_name

    handle = scenarios.apply(NodeFailure(nodes=[node]))

    status = core.read_node_status(node).status
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert ready.status == "Unknown" and ready.reason == "NodeStatusUnknown"
    assert ready.last_heartbeat_time < dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    taints = {(t.key, t.effect) for t in core.read_node(node).spec.taints}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in taints
    assert f"{namespace}/{victim.metadata.name}" in handle.details["pods"]
    time.sleep(3)  # nobody confirms the deletion: the pod stays Terminating
    stuck = core.read_namespaced_pod(victim.metadata.name, namespace)
    assert stuck.metadata.deletion_timestamp is not None
    lease = k8s.CoordinationV1Api(k8s_api).read_namespaced_lease(node, "kube-node-lease")
    assert lease.spec.holder_identity == NodeFailure.holder
    assert lease.spec.renew_time < dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)

    handle.undo()

    assert LocalCluster.node_ready(core.read_node(node))
    assert not any(t.key == "node.kubernetes.io/unreachable" for t in core.read_node(node).spec.taints or [])
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod(victim.metadata.name, namespace)
    assert gone.value.status == 404
    wait_for("victim back to 2 ready pods", lambda: sum(pod_ready(p) for p in pods_matching(k8s_api, namespace, labels)) == 2, 60)


def test_pod_ip_exhaustion_leaves_pods_pending_with_sandbox_errors(
    k8s_api: k8s.ApiClient, namespace: str, scenarios: ScenarioRunner
) -> None:
    handle = scenarios.apply(PodIpExhaustion(namespace=namespace, replicas=3))

    assert k8s.AppsV1Api(k8s_api).read_namespaced_daemon_set(AWS_NODE, SYSTEM_NAMESPACE)
    time.sleep(2)  # kwok must not pick these pods up
    pods = pods_matching(k8s_api, namespace, {"app": "checkout"})
    assert len(pods) == 3
    for pod in pods:
        assert pod.status.phase == "Pending" and pod.spec.node_name
        assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
        assert not pod.status.pod_ip
    events = _events(k8s_api, namespace, "FailedCreatePodSandBox")
    assert len(events) == 3
    assert all(e.type == "Warning" and e.source.component == "kubelet" for e in events)
    assert all("failed to assign an IP address to container" in e.message and "no available IP addresses" in e.message for e in events)

    handle.undo()

    assert not pods_matching(k8s_api, namespace, {"app": "checkout"})
    assert not _events(k8s_api, namespace, "FailedCreatePodSandBox")


def test_dns_outage_has_no_ready_coredns_and_no_endpoints(k8s_api: k8s.ApiClient, scenarios: ScenarioRunner) -> None:
    handle = scenarios.apply(DnsOutage())

    time.sleep(2)
    coredns = k8s.AppsV1Api(k8s_api).read_namespaced_deployment(COREDNS, SYSTEM_NAMESPACE)
    assert not coredns.status.ready_replicas
    assert ready_endpoint_count(k8s_api, SYSTEM_NAMESPACE, KUBE_DNS_SERVICE) == 0
    assert all(not pod_ready(p) for p in pods_matching(k8s_api, SYSTEM_NAMESPACE, COREDNS_LABELS))
    assert _events(k8s_api, SYSTEM_NAMESPACE, "Unhealthy")

    handle.undo()

    wait_for("CoreDNS healthy again", lambda: coredns_healthy(k8s_api, replicas=2), 60)


def test_crash_loop_restarts_climb_with_backoff_events(k8s_api: k8s.ApiClient, scenarios: ScenarioRunner) -> None:
    handle = scenarios.apply(CrashLoop(interval=1.0))

    def restarts() -> int:
        pods = pods_matching(k8s_api, SYSTEM_NAMESPACE, {"k8s-app": "metrics-server"})
        return min(p.status.container_statuses[0].restart_count for p in pods) if pods else 0

    first = restarts()
    wait_for("restartCount to climb", lambda: restarts() >= first + 2, 30)
    pod = pods_matching(k8s_api, SYSTEM_NAMESPACE, {"k8s-app": "metrics-server"})[0]
    status = pod.status.container_statuses[0]
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.last_state.terminated.exit_code == 1
    backoffs = [e for e in _events(k8s_api, SYSTEM_NAMESPACE, "BackOff") if e.involved_object.name == pod.metadata.name]
    assert backoffs and backoffs[0].type == "Warning" and backoffs[0].count >= 2

    handle.undo()

    assert not pods_matching(k8s_api, SYSTEM_NAMESPACE, {"k8s-app": "metrics-server"})


def test_crash_loop_of_an_existing_component_is_restored(k8s_api: k8s.ApiClient, scenarios: ScenarioRunner) -> None:
    handle = scenarios.apply(CrashLoop(existing=COREDNS, interval=60.0))

    pods = pods_matching(k8s_api, SYSTEM_NAMESPACE, COREDNS_LABELS)
    assert all(p.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff" for p in pods)

    handle.undo()

    wait_for("CoreDNS healthy again", lambda: coredns_healthy(k8s_api, replicas=2), 60)


def test_pdb_blocks_eviction_with_429(k8s_api: k8s.ApiClient, namespace: str, scenarios: ScenarioRunner) -> None:
    handle = scenarios.apply(BlockingPdb(namespace=namespace, replicas=2))

    victim = handle.details["pods"][0]
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim, "namespace": namespace}}
    with pytest.raises(ApiException) as refused:
        k8s.CoreV1Api(k8s_api).create_namespaced_pod_eviction(victim, namespace, eviction)
    assert refused.value.status == 429
    assert "disruption budget" in refused.value.body

    handle.undo()

    with pytest.raises(ApiException) as gone:
        k8s.PolicyV1Api(k8s_api).read_namespaced_pod_disruption_budget("payments", namespace)
    assert gone.value.status == 404


def test_slow_and_unreachable_apiserver_through_the_proxy(k8s_cluster: LocalCluster, tmp_path: object) -> None:
    assert k8s_cluster.ports is not None
    with FaultProxy("127.0.0.1", k8s_cluster.ports.apiserver) as proxy:
        path = k8s_cluster.write_kubeconfig(tmp_path / "proxied.kubeconfig", proxy.url)  # type: ignore[operator]
        from kubernetes import config as k8s_config

        with k8s_config.new_client_from_config(config_file=str(path)) as api:
            version = k8s.VersionApi(api)
            assert version.get_code().git_version == "v1.36.3"

            slow = SlowApiserver(proxy, latency=1.0).apply(api)
            started = time.monotonic()
            version.get_code()
            assert time.monotonic() - started >= 1.0
            slow.undo()
            started = time.monotonic()
            version.get_code()
            assert time.monotonic() - started < 1.0

            down = ApiserverUnreachable(proxy).apply(api)
            with pytest.raises(urllib3.exceptions.HTTPError):
                version.get_code(_request_timeout=2)
            down.undo()
            assert version.get_code().git_version == "v1.36.3"

            hung = ApiserverUnreachable(proxy, mode="blackhole").apply(api)
            with pytest.raises(urllib3.exceptions.HTTPError):
                version.get_code(_request_timeout=1)
            hung.undo()
            assert version.get_code().git_version == "v1.36.3"


def test_scale_creates_nodes_and_running_pods(k8s_api: k8s.ApiClient, scenarios: ScenarioRunner) -> None:
    handle = scenarios.apply(Scale(nodes=20, pods=200, namespace="scale-test", workers=8, timeout=180))

    assert LocalCluster.ready_node_count(k8s_api, "sandbox.k8s-incident-bot/scale=true") == 20
    running = k8s.CoreV1Api(k8s_api).list_namespaced_pod("scale-test", field_selector="status.phase=Running").items
    assert len(running) == 200
    assert {"nodes_ready_s", "pods_running_s"} <= set(handle.details)

    handle.undo()

    assert not k8s.CoreV1Api(k8s_api).list_node(label_selector="sandbox.k8s-incident-bot/scale=true").items


def test_apiserver_down_refuses_then_recovers(k8s_cluster: LocalCluster, k8s_api: k8s.ApiClient) -> None:
    handle = ApiserverDown(k8s_cluster).apply()
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):
            k8s.CoreV1Api(k8s_api).list_node(_request_timeout=2)
    finally:
        handle.undo()
    k8s_cluster.wait_nodes_ready(k8s_api, 3, timeout=60)
    assert coredns_healthy(k8s_api, replicas=2)
