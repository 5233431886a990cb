"""Node failure: kubelets stop reporting, the node lifecycle controller reacts, pods hang in Terminating."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from kubernetes import client as k8s

from sandbox.cluster import KWOK_CUSTOM_STATUS_ANNOTATION, LocalCluster
from sandbox.objects import (
    NUDGE_ANNOTATION,
    Handle,
    ScenarioError,
    ignore_not_found,
    nudge,
    now,
    played_by_kwok,
    rfc3339,
    wait_for,
)
from sandbox.scenarios.pod_status import micro_time

UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
NODE_LEASE_NAMESPACE = "kube-node-lease"


@dataclass
class NodeFailure:
    """``count`` kwok nodes (or the named ``nodes``) stop reporting, as when their kubelets die.

    kwok is made to let go of each node the way it gives way to another kubelet: the node's Lease in
    ``kube-node-lease`` is taken over by a foreign holder (so kwok turns read-only for the node and its
    pods) and the node is annotated ``kwok.x-k8s.io/status=custom``. Undo expires that Lease, so kwok
    takes the node back, re-initializes it Ready and finalizes the pods left Terminating.
    """

    count: int = 1
    nodes: list[str] | None = None
    terminate_pods: bool = True
    """Delete the nodes' evictable pods as the taint-eviction controller would after 300 s: they stay Terminating."""
    stale_for: dt.timedelta = dt.timedelta(minutes=10)
    timeout: float = 60.0
    name: ClassVar[str] = "node-failure"
    holder: ClassVar[str] = "sandbox-node-failure"

    def apply(self, api: k8s.ApiClient) -> Handle:
        core = k8s.CoreV1Api(api)
        targets = self.nodes or self._choose(core)
        handle = Handle(self.name, f"{len(targets)} node(s) stopped reporting: {', '.join(targets)}", {"nodes": targets, "pods": []})
        for node in targets:
            handle.on_undo(f"revive node {node}", lambda node=node: self._revive(api, node))
            self._take_lease(api, node)
            core.patch_node(node, {"metadata": {"annotations": {KWOK_CUSTOM_STATUS_ANNOTATION[0]: KWOK_CUSTOM_STATUS_ANNOTATION[1]}}})
        wait_for("nodes Unknown with a stale heartbeat", lambda: all(self._mark_unknown(core, n) for n in targets), self.timeout)
        wait_for(
            f"the node lifecycle controller to taint {targets} {UNREACHABLE_TAINT}",
            lambda: all(self._tainted(core, n) for n in targets),
            self.timeout,
        )
        if self.terminate_pods:
            handle.details["pods"] = self._terminate_pods(core, targets)
        return handle

    def _take_lease(self, api: k8s.ApiClient, node: str) -> None:
        """A foreign holder whose Lease, renewed ``stale_for`` ago, kwok must still consider valid."""
        renewed = now() - self.stale_for
        duration = int(self.stale_for.total_seconds()) + 86400
        body = {"spec": {"holderIdentity": self.holder, "leaseDurationSeconds": duration, "renewTime": micro_time(renewed)}}
        k8s.CoordinationV1Api(api).patch_namespaced_lease(node, NODE_LEASE_NAMESPACE, body)

    def _release_lease(self, api: k8s.ApiClient, node: str) -> None:
        """Expire the foreign hold: kwok acquires the Lease on its next renewal and manages the node again."""
        expired = now() - dt.timedelta(hours=1)
        body = {"spec": {"leaseDurationSeconds": 40, "renewTime": micro_time(expired)}}
        ignore_not_found(lambda: k8s.CoordinationV1Api(api).patch_namespaced_lease(node, NODE_LEASE_NAMESPACE, body))

    def _choose(self, core: k8s.CoreV1Api) -> list[str]:
        healthy = sorted(
            node.metadata.name
            for node in core.list_node().items
            if played_by_kwok(node)
        )
        if len(healthy) < self.count:
            raise ScenarioError(f"node failure needs {self.count} Ready kwok nodes, the cluster has {len(healthy)}")
        return healthy[: self.count]

    def _mark_unknown(self, core: k8s.CoreV1Api, node: str) -> bool:
        """Write Unknown conditions unless already there (kwok may have been mid-heartbeat); true once stable."""
        current = core.read_node_status(node)
        types = [c.type for c in current.status.conditions or [] if c.type in NODE_CONDITIONS] or list(NODE_CONDITIONS)
        if all(c.status == "Unknown" for c in current.status.conditions or [] if c.type in types):
            return True
        stale, moment = rfc3339(now() - self.stale_for), rfc3339(now())
        conditions = [
            {
                "type": kind,
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": stale,
                "lastTransitionTime": moment,
            }
            for kind in types
        ]
        core.patch_node_status(node, {"status": {"conditions": conditions}})
        return False

    @staticmethod
    def _tainted(core: k8s.CoreV1Api, node: str) -> bool:
        taints = core.read_node(node).spec.taints or []
        return any(t.key == UNREACHABLE_TAINT and t.effect == "NoExecute" for t in taints)

    @staticmethod
    def _evictable(pod: k8s.V1Pod) -> bool:
        if any(ref.kind == "DaemonSet" for ref in pod.metadata.owner_references or []):
            return False
        for toleration in pod.spec.tolerations or []:
            forever = toleration.toleration_seconds is None and toleration.effect in (None, "", "NoExecute")
            if forever and (toleration.key == UNREACHABLE_TAINT or (toleration.key in (None, "") and toleration.operator == "Exists")):
                return False
        return pod.metadata.deletion_timestamp is None

    def _terminate_pods(self, core: k8s.CoreV1Api, nodes: list[str]) -> list[str]:
        deleted = []
        for node in nodes:
            for pod in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items:
                if self._evictable(pod):
                    # Taken from kwok first: kwok may not yet have seen the Lease hand-over and would
                    # otherwise finalize the deletion it is not supposed to see.
                    custom = {"metadata": {"annotations": {KWOK_CUSTOM_STATUS_ANNOTATION[0]: KWOK_CUSTOM_STATUS_ANNOTATION[1]}}}
                    ignore_not_found(lambda pod=pod: core.patch_namespaced_pod(pod.metadata.name, pod.metadata.namespace, custom))
                    ignore_not_found(lambda pod=pod: core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace))
                    deleted.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        return deleted

    def _revive(self, api: k8s.ApiClient, node: str) -> None:
        """Hand the node back to kwok, then wait for Ready, no taints and no pod left Terminating.

        kwok re-reads a node's pods the moment it re-acquires the Lease, possibly before its own Lease
        cache shows it as holder, and then skips them (see :func:`sandbox.objects.replay_skipped_pods`); so
        the node and its leftover pods are nudged (an annotation change is an event kwok reacts to) until
        kwok has finished with them.
        """
        core, leases = k8s.CoreV1Api(api), k8s.CoordinationV1Api(api)
        self._release_lease(api, node)
        wait_for(
            f"kwok to take the Lease of {node} back",
            lambda: leases.read_namespaced_lease(node, NODE_LEASE_NAMESPACE).spec.holder_identity != self.holder,
            self.timeout,
        )
        core.patch_node(node, {"metadata": {"annotations": {KWOK_CUSTOM_STATUS_ANNOTATION[0]: None}}})

        def healthy() -> bool:
            current = core.read_node(node)
            if LocalCluster.node_ready(current):
                return not self._tainted(core, node)
            nudge(lambda body: core.patch_node(node, body))
            return False

        def finalized() -> bool:
            pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
            stuck = [p for p in pods if p.metadata.deletion_timestamp]
            for pod in stuck:  # given back to kwok (custom status dropped) and nudged
                nudge(lambda body, pod=pod: ignore_not_found(lambda: core.patch_namespaced_pod(
                    pod.metadata.name, pod.metadata.namespace,
                    {"metadata": {"annotations": {**body["metadata"]["annotations"],  # type: ignore[index]
                                                  KWOK_CUSTOM_STATUS_ANNOTATION[0]: None}}})))
            return not stuck

        wait_for(f"node {node} Ready and untainted again", healthy, self.timeout, interval=1.0)
        wait_for(f"pods left Terminating on {node} to be finalized", finalized, self.timeout, interval=1.0)
        core.patch_node(node, {"metadata": {"annotations": {NUDGE_ANNOTATION: None}}})
