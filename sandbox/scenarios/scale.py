"""Scale scenario: many kwok nodes and pods created in parallel, for benchmarks (1,000 nodes / 10,000 pods).

Nodes are ordinary kwok nodes (labelled so undo can find them); pods are bound round-robin straight to
those nodes by default (``use_scheduler=True`` lets kube-scheduler place them instead), and kwok
marks them Running. Creation runs on a thread pool over one connection pool; transient API errors
(429, 5xx, resets) are retried. Re-exported by :mod:`sandbox.scenarios`; used by ``bench/``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from sandbox.cluster import LocalCluster, kwok_node_manifest
from sandbox.objects import Handle, ScenarioError, create_if_missing, ignore_not_found, wait_for

SCALE_LABEL = "sandbox.k8s-incident-bot/scale"


def _retrying(call: Callable[[], object], attempts: int = 5) -> None:
    for attempt in range(attempts):
        try:
            create_if_missing(call)
            return
        except ApiException as error:
            if error.status not in (429, 500, 502, 503, 504) or attempt == attempts - 1:
                raise
        except HTTPError:
            if attempt == attempts - 1:
                raise
        time.sleep(0.2 * 2**attempt)


def _parallel(workers: int, calls: Sequence[Callable[[], object]]) -> None:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scale") as pool:
        for future in [pool.submit(_retrying, call) for call in calls]:
            future.result()


def _pod(name: str, namespace: str, node: str | None, image: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": image, "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}],
        "terminationGracePeriodSeconds": 30,
    }
    if node is not None:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "scale", SCALE_LABEL: "true"}},
        "spec": spec,
    }


@dataclass
class Scale:
    """``nodes`` kwok nodes and ``pods`` Running pods in ``namespace``; timings land in ``handle.details``."""

    nodes: int = 1000
    pods: int = 10000
    namespace: str = "scale"
    workers: int = 16
    node_prefix: str = "scale-node"
    use_scheduler: bool = False
    image: str = "registry.k8s.io/pause:3.10"
    timeout: float = 900.0
    name: ClassVar[str] = "scale"

    def apply(self, api: k8s.ApiClient) -> Handle:
        configuration = copy.copy(api.configuration)
        configuration.connection_pool_maxsize = self.workers * 2
        pooled = k8s.ApiClient(configuration)
        core = k8s.CoreV1Api(pooled)
        handle = Handle(self.name, f"{self.nodes} extra nodes, {self.pods} pods in {self.namespace}", {})
        handle.on_undo("delete the scale namespace and nodes", lambda: self._cleanup(api))
        started = time.monotonic()
        names = [f"{self.node_prefix}-{index}" for index in range(self.nodes)]
        _parallel(self.workers, [
            lambda name=name, index=index: core.create_node(
                kwok_node_manifest(name, index, {SCALE_LABEL: "true"}, registering=False))
            for index, name in enumerate(names)
        ])
        handle.details["nodes_created_s"] = time.monotonic() - started
        selector = f"{SCALE_LABEL}=true"
        wait_for(f"{self.nodes} scale nodes Ready", lambda: LocalCluster.ready_node_count(pooled, selector) >= self.nodes,
                 self.timeout, interval=2.0)
        handle.details["nodes_ready_s"] = time.monotonic() - started
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        create_if_missing(lambda: core.create_namespace(namespace))
        wait_for(f"service account default in {self.namespace}", lambda: self._has_default_sa(core), 60)
        pods_started = time.monotonic()
        _parallel(self.workers, [
            lambda i=i: core.create_namespaced_pod(
                self.namespace,
                _pod(f"scale-{i}", self.namespace, None if self.use_scheduler or not names else names[i % len(names)], self.image),
            )
            for i in range(self.pods)
        ])
        handle.details["pods_created_s"] = time.monotonic() - pods_started
        wait_for(f"{self.pods} scale pods Running", lambda: self._all_running(core), self.timeout, interval=1.0)
        handle.details["pods_running_s"] = time.monotonic() - pods_started
        pooled.close()
        return handle

    def _has_default_sa(self, core: k8s.CoreV1Api) -> bool:
        try:
            core.read_namespaced_service_account("default", self.namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def _all_running(self, core: k8s.CoreV1Api) -> bool:
        """No pod of the namespace outside phase Running (the apiserver filters; at most one small page)."""
        pending = core.list_namespaced_pod(self.namespace, field_selector="status.phase!=Running", limit=100)
        return not pending.items

    def _cleanup(self, api: k8s.ApiClient) -> None:
        """Pods first (in parallel, no grace: nothing to wait for), then the namespace, nodes last.

        Left to the namespace controller, 10,000 graceful deletions each waiting for kwok take many
        minutes; pods left on deleted nodes would wait for the pod garbage collector's quarantine.
        """
        configuration = copy.copy(api.configuration)
        configuration.connection_pool_maxsize = self.workers * 2
        with k8s.ApiClient(configuration) as pooled:
            core = k8s.CoreV1Api(pooled)
            names = [pod.metadata.name for pod in core.list_namespaced_pod(self.namespace, resource_version="0").items]
            _parallel(self.workers, [
                lambda name=name: ignore_not_found(
                    lambda: core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
                )
                for name in names
            ])
            ignore_not_found(lambda: core.delete_namespace(self.namespace))
            wait_for(f"namespace {self.namespace} deleted", lambda: self._namespace_gone(core), self.timeout, interval=0.5)
            core.delete_collection_node(label_selector=f"{SCALE_LABEL}=true")
            if core.list_node(label_selector=f"{SCALE_LABEL}=true").items:
                raise ScenarioError("scale nodes still present after delete_collection_node")

    def _namespace_gone(self, core: k8s.CoreV1Api) -> bool:
        try:
            core.read_namespace(self.namespace)
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        return False
