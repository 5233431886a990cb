"""Each risky action's effect through the real API of the local control plane, run by a real RQ worker.

The worker runs the production :class:`kube.actions.KubeExecutor` (Slack messages are recorded in
Redis instead of posted); every test undoes what it changed on the session cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

import tests.conftest as _root
from incident.actions import ActionRequest, ActionStatus
from incident.model import Incident
from incident.settings import Settings
from persistence.store import IncidentStore
from persistence.timeline import Timeline
from sandbox.cluster import LocalCluster
from sandbox.objects import container, deployment, pod_template, pods_matching
from sandbox.scenarios import BlockingPdb
from tests.workers import test_actions_standin as standin
from tests.workers.test_actions_standin import Workers, wait_for, worker_env
from service.actions import action_store, enqueue_drain, enqueue_prepare
from service.context import Context

if "tests.fixtures.cluster" not in getattr(_root, "pytest_plugins", []):
    from tests.fixtures.cluster import k8s_api, k8s_cluster, kubeconfig, namespace, scenarios  # noqa: F401

pytestmark = pytest.mark.cluster
FINAL = {ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.OUTCOME_UNKNOWN, ActionStatus.REJECTED}


@pytest.fixture()
def settings(redis_url: str, kubeconfig: Path) -> Settings:
    return Settings(redis_url=redis_url, kubeconfig=kubeconfig, action_lease_seconds=5, cluster_name="local",
                    confirmation_ttl_seconds=120)


@pytest.fixture()
def worker(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    with Workers(worker_env(settings), tmp_path) as running:
        running.start()
        yield running


@pytest.fixture()
def context(settings: Settings, redis_client: redis.Redis) -> Context:
    return Context(settings, redis_client, action_runtime=standin.recording_runtime(settings),
                   runtime_path=standin.KUBE_RUNTIME)


@pytest.fixture()
def incident(redis_client: redis.Redis) -> Incident:
    store = IncidentStore(redis_client)
    return store.create(Incident(id="20261123-007", title="drill", severity="sev2", channel_id="C_INC",
                                 channel_name="inc-drill", opened_by="U_ALICE", opened_at=store.clock.now()))


def run(context: Context, incident: Incident, kind: str, target: str, **params: Any) -> ActionRequest:
    """Request → validation + dry-run in the worker → confirm → serialized run in the worker; the final request."""
    store = action_store(context)
    action = store.new(cluster="local", kind=kind, target=target, requested_by="U_ALICE", channel_id=incident.channel_id,
                       incident_id=incident.id, params=params)
    enqueue_prepare(context.settings, action.id, standin.KUBE_RUNTIME)
    wait_for(lambda: store.get(action.id).status != ActionStatus.PREPARING, 60, f"{action.description} prepared")
    if store.get(action.id).status == ActionStatus.REJECTED:
        return store.get(action.id)
    assert store.confirm(action.id, "U_BOB").queued
    enqueue_drain(context.settings, "local", standin.KUBE_RUNTIME)
    wait_for(lambda: store.get(action.id).status in FINAL, 120, f"{action.description} finished")
    return store.get(action.id)


def node_unschedulable(api: k8s.ApiClient, name: str) -> bool:
    return bool(k8s.CoreV1Api(api).read_node(name).spec.unschedulable)


def set_unschedulable(api: k8s.ApiClient, name: str, value: bool) -> None:
    k8s.CoreV1Api(api).patch_node(name, {"spec": {"unschedulable": value}}, _content_type="application/merge-patch+json")


@pytest.fixture()
def spare_node(k8s_cluster: LocalCluster, k8s_api: k8s.ApiClient) -> Iterator[str]:
    """A fresh Ready kwok node of its own, deleted afterwards if still there."""
    (name,) = k8s_cluster.create_nodes(k8s_api, 1)
    core = k8s.CoreV1Api(k8s_api)
    wait_for(lambda: LocalCluster.node_ready(core.read_node(name)), 60, f"node {name} Ready")
    try:
        yield name
    finally:
        try:
            core.delete_node(name)
        except ApiException as error:
            if error.status != 404:
                raise


def test_cordon_then_uncordon(context: Context, incident: Incident, worker: Workers, k8s_api: k8s.ApiClient,
                              spare_node: str, redis_client: redis.Redis) -> None:
    cordoned = run(context, incident, "cordon", spare_node)
    assert cordoned.status == ActionStatus.SUCCEEDED, cordoned.outcome
    assert "spec.unschedulable false → true" in cordoned.dry_run
    assert node_unschedulable(k8s_api, spare_node)

    again = run(context, incident, "cordon", spare_node)
    assert again.status == ActionStatus.REJECTED and "already cordoned" in again.outcome

    uncordoned = run(context, incident, "uncordon", spare_node)
    assert uncordoned.status == ActionStatus.SUCCEEDED, uncordoned.outcome
    assert not node_unschedulable(k8s_api, spare_node)

    audit = Timeline(redis_client, incident.id).entries({"action"})
    assert [(e.data["description"], e.data["status"]) for e in audit] == [
        (f"cordon node {spare_node}", "succeeded"), (f"uncordon node {spare_node}", "succeeded")]
    assert audit[0].data["confirmed_by"] == ["U_BOB"] and audit[0].data["requested_by"] == "U_ALICE"
    assert audit[0].data["started_at"] <= audit[0].data["finished_at"] <= audit[1].data["started_at"]


def test_bad_targets_are_rejected_and_change_nothing(context: Context, incident: Incident, worker: Workers,
                                                     namespace: str, redis_client: redis.Redis) -> None:
    missing = run(context, incident, "cordon", "no-such-node")
    assert missing.status == ActionStatus.REJECTED and "Node `no-such-node` does not exist" in missing.outcome
    no_ns = run(context, incident, "restart", "no-such-ns/web", workload="deployment")
    assert no_ns.status == ActionStatus.REJECTED and "Namespace `no-such-ns` does not exist" in no_ns.outcome
    no_deploy = run(context, incident, "scale", f"{namespace}/nothing", replicas=2)
    assert no_deploy.status == ActionStatus.REJECTED and "does not exist" in no_deploy.outcome
    assert redis_client.llen(context.keys.action_queue("local")) == 0
    assert not Timeline(redis_client, incident.id).entries({"action"})
    # The worker records the rejection first, then tells the requester: wait for the last message.
    def told() -> list[dict[str, Any]]:
        return [n for n in standin.notes(redis_client) if n["method"] == "ephemeral"]

    wait_for(lambda: len(told()) == 3, 30, "three rejections told")
    assert all(n["user"] == "U_ALICE" for n in told())


def _web(api: k8s.ApiClient, namespace: str, replicas: int, **spec: Any) -> dict[str, str]:
    labels = {"app": "web"}
    template = pod_template(labels, [container("web", "registry.k8s.io/pause:3.10")], **spec)
    template["spec"]["terminationGracePeriodSeconds"] = 0
    k8s.AppsV1Api(api).create_namespaced_deployment(namespace, deployment("web", namespace, replicas, template))
    return labels


def test_restart_and_scale_a_deployment(context: Context, incident: Incident, worker: Workers,
                                        k8s_api: k8s.ApiClient, namespace: str) -> None:
    _web(k8s_api, namespace, 2)
    apps = k8s.AppsV1Api(k8s_api)
    restarted = run(context, incident, "restart", f"{namespace}/web", workload="deployment")
    assert restarted.status == ActionStatus.SUCCEEDED, restarted.outcome
    annotations = apps.read_namespaced_deployment("web", namespace).spec.template.metadata.annotations or {}
    stamp = annotations.get("kubectl.kubernetes.io/restartedAt")
    assert stamp and stamp in restarted.outcome
    time.sleep(1.1)  # restartedAt has one-second resolution
    again = run(context, incident, "restart", f"{namespace}/web", workload="deployment")
    assert again.status == ActionStatus.SUCCEEDED
    newer = apps.read_namespaced_deployment("web", namespace).spec.template.metadata.annotations
    assert newer["kubectl.kubernetes.io/restartedAt"] > stamp

    scaled = run(context, incident, "scale", f"{namespace}/web", replicas=0)
    assert scaled.status == ActionStatus.SUCCEEDED, scaled.outcome
    assert "replicas 2 → 0" in scaled.dry_run
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 0
    same = run(context, incident, "scale", f"{namespace}/web", replicas=0)
    assert same.status == ActionStatus.REJECTED and "already has 0" in same.outcome


def test_restart_daemonset_and_delete_pod(context: Context, incident: Incident, worker: Workers,
                                          k8s_api: k8s.ApiClient, namespace: str) -> None:
    labels = _web(k8s_api, namespace, 1)
    core = k8s.CoreV1Api(k8s_api)
    wait_for(lambda: pods_matching(k8s_api, namespace, labels), 30, "a web pod")
    pod = pods_matching(k8s_api, namespace, labels)[0]
    deleted = run(context, incident, "delete-pod", f"{namespace}/{pod.metadata.name}")
    assert deleted.status == ActionStatus.SUCCEEDED, deleted.outcome
    assert "ReplicaSet" in deleted.dry_run and "creates a replacement" in deleted.dry_run

    def gone() -> bool:
        try:
            core.read_namespaced_pod(pod.metadata.name, namespace)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, 30, "the deleted pod gone")

    daemon = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": namespace},
              "spec": {"selector": {"matchLabels": {"app": "agent"}},
                       "template": pod_template({"app": "agent"}, [container("agent", "registry.k8s.io/pause:3.10")])}}
    k8s.AppsV1Api(k8s_api).create_namespaced_daemon_set(namespace, daemon)
    restarted = run(context, incident, "restart", f"{namespace}/agent", workload="daemonset")
    assert restarted.status == ActionStatus.SUCCEEDED, restarted.outcome
    annotations = k8s.AppsV1Api(k8s_api).read_namespaced_daemon_set("agent", namespace).spec.template.metadata.annotations
    assert "kubectl.kubernetes.io/restartedAt" in annotations


def test_drain_respects_a_blocking_pdb_then_completes(context: Context, incident: Incident, worker: Workers,
                                                      k8s_api: k8s.ApiClient, namespace: str, spare_node: str,
                                                      scenarios: Any) -> None:
    core = k8s.CoreV1Api(k8s_api)
    # Everything of this test lands on the spare node: cordon the others for the time of the set-up.
    others = [n.metadata.name for n in core.list_node().items if n.metadata.name != spare_node
              and not n.spec.unschedulable]
    for name in others:
        set_unschedulable(k8s_api, name, True)
    try:
        handle = scenarios.apply(BlockingPdb(namespace=namespace, deployment="payments", replicas=2))
        web = _web(k8s_api, namespace, 2)
        wait_for(lambda: len([p for p in pods_matching(k8s_api, namespace, web) if p.spec.node_name]) == 2, 30,
                 "web pods scheduled")
    finally:
        for name in others:
            set_unschedulable(k8s_api, name, False)
    try:
        on_node = {p.metadata.name for p in core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={spare_node}").items}
        payments = set(handle.details["pods"])
        web_pods = {p.metadata.name for p in pods_matching(k8s_api, namespace, web)}
        assert payments | web_pods <= on_node

        blocked = run(context, incident, "drain", spare_node, timeout=6)
        assert blocked.status == ActionStatus.FAILED, blocked.outcome
        assert "refused right now by a PodDisruptionBudget" in blocked.dry_run
        assert "DaemonSet" in blocked.dry_run  # aws-node is skipped
        assert "PodDisruptionBudget kept refusing (HTTP 429)" in blocked.outcome
        for name in payments:
            assert name in blocked.outcome
        assert node_unschedulable(k8s_api, spare_node)
        left = {p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={spare_node}").items
                if p.metadata.deletion_timestamp is None}
        assert payments <= left, "the PDB must be respected"
        assert not (web_pods & left), "pods without a budget must be evicted"
        assert any(p.startswith("aws-node") for p in left), "DaemonSet pods stay"

        k8s.PolicyV1Api(k8s_api).delete_namespaced_pod_disruption_budget("payments", namespace)
        drained = run(context, incident, "drain", spare_node, timeout=30, grace=0)
        assert drained.status == ActionStatus.SUCCEEDED, drained.outcome
        remaining = {p.metadata.name for p in core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={spare_node}").items}
        assert not (payments & remaining)
        progress = [n for n in standin.notes(context.redis) if n["method"] == "post" and n.get("thread_ts")]
        assert any("evicting" in n["text"] for n in progress)
    finally:
        set_unschedulable(k8s_api, spare_node, False)


def test_delete_node(context: Context, incident: Incident, worker: Workers, k8s_api: k8s.ApiClient,
                     spare_node: str) -> None:
    deleted = run(context, incident, "delete-node", spare_node)
    assert deleted.status == ActionStatus.SUCCEEDED, deleted.outcome
    assert "removed from the cluster" in deleted.dry_run
    with pytest.raises(ApiException) as raised:
        k8s.CoreV1Api(k8s_api).read_node(spare_node)
    assert raised.value.status == 404


def test_label_then_unlabel_a_node(context: Context, incident: Incident, worker: Workers, k8s_api: k8s.ApiClient,
                                   spare_node: str, redis_client: redis.Redis) -> None:
    """The runbook's restore step: re-apply a replaced node's labels (dry-run first, confirmed, serialized, audited)."""
    core = k8s.CoreV1Api(k8s_api)
    key = "incident.example.com/restored"
    before = dict(core.read_node(spare_node).metadata.labels)
    store = action_store(context)
    action = store.new(cluster="local", kind="label", target=spare_node, requested_by="U_ALICE",
                       channel_id=incident.channel_id, incident_id=incident.id, params={"key": key, "value": "yes"})
    enqueue_prepare(context.settings, action.id, standin.KUBE_RUNTIME)
    wait_for(lambda: store.get(action.id).status != ActionStatus.PREPARING, 60, "label prepared")
    prepared = store.get(action.id)
    assert prepared.status == ActionStatus.AWAITING_CONFIRMATION, prepared.outcome
    assert f"label `{key}`: unset → `yes`" in prepared.dry_run
    assert key not in (core.read_node(spare_node).metadata.labels or {}), "the dry-run changed the node"
    assert store.confirm(action.id, "U_BOB").queued
    enqueue_drain(context.settings, "local", standin.KUBE_RUNTIME)
    wait_for(lambda: store.get(action.id).status in FINAL, 120, "label finished")
    labelled = store.get(action.id)
    assert labelled.status == ActionStatus.SUCCEEDED, labelled.outcome
    labels = core.read_node(spare_node).metadata.labels
    # kwok may still be adding its own labels (beta.kubernetes.io/*): compare what was there before.
    assert labels[key] == "yes" and before.items() <= labels.items()

    again = run(context, incident, "label", spare_node, key=key, value="yes")
    assert again.status == ActionStatus.REJECTED and f"already has label `{key}=yes`" in again.outcome
    changed = run(context, incident, "label", spare_node, key=key, value="no")
    assert changed.status == ActionStatus.SUCCEEDED and f"label `{key}`: `yes` → `no`" in changed.dry_run

    removed = run(context, incident, "unlabel", spare_node, key=key)
    assert removed.status == ActionStatus.SUCCEEDED, removed.outcome
    assert f"label `{key}` (now `no`) is removed" in removed.dry_run
    labels = core.read_node(spare_node).metadata.labels
    assert key not in labels and before.items() <= labels.items(), "only the one label may change"
    gone = run(context, incident, "unlabel", spare_node, key=key)
    assert gone.status == ActionStatus.REJECTED and f"has no label `{key}`" in gone.outcome

    audit = Timeline(redis_client, incident.id).entries({"action"})
    assert [(e.data["description"], e.data["status"], e.data["confirmed_by"]) for e in audit] == [
        (f"label node {spare_node} {key}=yes", "succeeded", ["U_BOB"]),
        (f"label node {spare_node} {key}=no", "succeeded", ["U_BOB"]),
        (f"unlabel node {spare_node} {key}", "succeeded", ["U_BOB"])]
    assert [e.data["fence"] for e in audit] == sorted(e.data["fence"] for e in audit)  # one at a time, in order
