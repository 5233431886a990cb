"""Guided recovery's parts of the actions, through the real API of the test bed and a real worker: the probes
are removed and put back exactly, and each executor records the inverse its Undo offers (or why it has none)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from kubernetes import client as k8s

import tests.conftest as _root
from incident.actions import ActionStatus
from incident.model import Incident
from kube.actions.probes import SAVED_PROBES
from sandbox.cluster import LocalCluster
from sandbox.objects import container, deployment, pod_template
from service.context import Context
from service.recovery_record import undo_of
from tests.workers.test_actions_cluster import context, incident, run, settings, worker  # noqa: F401
from tests.workers.test_actions_standin import Workers, wait_for

if "tests.fixtures.cluster" not in getattr(_root, "pytest_plugins", []):
    from tests.fixtures.cluster import k8s_api, k8s_cluster, kubeconfig, namespace  # noqa: F401

pytestmark = pytest.mark.cluster
PROBES = {
    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5, "failureThreshold": 2},
    "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 3},
}


def _probed_web(api: k8s.ApiClient, namespace: str) -> None:
    app = {**container("app", "registry.k8s.io/pause:3.10", [("http", 8080, "TCP")]), **PROBES}
    sidecar = container("sidecar", "registry.k8s.io/pause:3.10")
    body = deployment("web", namespace, 1, pod_template({"app": "web"}, [app, sidecar]))
    k8s.AppsV1Api(api).create_namespaced_deployment(namespace, body)


def _probes(api: k8s.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    raw = api.sanitize_for_serialization(k8s.AppsV1Api(api).read_namespaced_deployment("web", namespace))
    return {c["name"]: {k: c[k] for k in ("readinessProbe", "livenessProbe", "startupProbe") if k in c}
            for c in raw["spec"]["template"]["spec"]["containers"]}


def test_probes_off_then_restore_puts_back_exactly_what_was_there(
        context: Context, incident: Incident, worker: Workers, k8s_api: k8s.ApiClient, namespace: str,
        redis_client: redis.Redis) -> None:
    _probed_web(k8s_api, namespace)
    before = _probes(k8s_api, namespace)
    assert set(before["app"]) == {"readinessProbe", "livenessProbe"} and before["sidecar"] == {}
    off = run(context, incident, "probes-off", f"{namespace}/web", workload="deployment")
    assert off.status == ActionStatus.SUCCEEDED, off.outcome
    assert "remove readinessProbe, livenessProbe of `app`" in off.dry_run and SAVED_PROBES in off.dry_run
    assert _probes(k8s_api, namespace) == {"app": {}, "sidecar": {}}
    annotations = k8s.AppsV1Api(k8s_api).read_namespaced_deployment("web", namespace).metadata.annotations
    assert SAVED_PROBES in annotations
    assert undo_of(redis_client, context.keys, off.id)["description"] == f"probes restore deployment {namespace}/web"

    again = run(context, incident, "probes-off", f"{namespace}/web", workload="deployment")
    assert again.status == ActionStatus.REJECTED and "already removed" in again.outcome

    restored = run(context, incident, "probes-restore", f"{namespace}/web", workload="deployment")
    assert restored.status == ActionStatus.SUCCEEDED, restored.outcome
    assert _probes(k8s_api, namespace) == before
    annotations = k8s.AppsV1Api(k8s_api).read_namespaced_deployment("web", namespace).metadata.annotations or {}
    assert SAVED_PROBES not in annotations
    assert "probes are back" in undo_of(redis_client, context.keys, restored.id)["note"]
    nothing = run(context, incident, "probes-restore", f"{namespace}/web", workload="deployment")
    assert nothing.status == ActionStatus.REJECTED and "nothing to restore" in nothing.outcome


def test_each_executor_records_the_inverse_its_undo_offers(
        context: Context, incident: Incident, worker: Workers, k8s_api: k8s.ApiClient, namespace: str,
        k8s_cluster: LocalCluster, redis_client: redis.Redis) -> None:
    core = k8s.CoreV1Api(k8s_api)
    (node,) = k8s_cluster.create_nodes(k8s_api, 1)
    wait_for(lambda: LocalCluster.node_ready(core.read_node(node)), 60, "the new node Ready")
    _probed_web(k8s_api, namespace)
    key = "incident.example.com/pool"
    try:
        def undo(kind: str, target: str, **params: Any) -> dict[str, str]:
            done = run(context, incident, kind, target, **params)
            assert done.status == ActionStatus.SUCCEEDED, done.outcome
            return undo_of(redis_client, context.keys, done.id)

        assert undo("cordon", node)["description"] == f"uncordon node {node}"
        assert undo("uncordon", node)["description"] == f"cordon node {node}"
        assert undo("drain", node, grace=None, timeout=30)["description"] == f"uncordon node {node}"
        assert undo("label", node, key=key, value="blue")["description"] == f"unlabel node {node} {key}"
        assert undo("label", node, key=key, value="green")["description"] == f"label node {node} {key}=blue"
        assert undo("unlabel", node, key=key)["description"] == f"label node {node} {key}=green"
        assert undo("scale", f"{namespace}/web", workload="deployment", replicas=3)["description"] == (
            f"scale deployment {namespace}/web to 1")
        restart = undo("restart", f"{namespace}/web", workload="deployment")
        assert not restart.get("description") and "replaced the pods" in restart["note"]
        deleted = undo("delete-node", node)
        assert not deleted.get("description") and "registering again" in deleted["note"]
    finally:
        try:
            core.delete_node(node)
        except k8s.ApiException:
            pass
