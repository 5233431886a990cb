"""Failure scenarios from the runbook, applied to the local cluster through the real API and undoable.

Each scenario is a small dataclass with ``apply(api) -> Handle``; ``handle.undo()`` restores the cluster.
Objects whose status a scenario writes are taken away from kwok first (node annotation removed, or
pods annotated ``kwok.x-k8s.io/status=custom``), so kwok cannot overwrite the broken state; the real
kube-controller-manager still reacts (node taints, pods marked NotReady, EndpointSlices, PDB status).

- :class:`NodeFailure` — nodes stop reporting: conditions Unknown, stale heartbeat, unreachable
  taints from the node lifecycle controller, their pods stuck Terminating;
- :class:`PodIpExhaustion` — ``aws-node`` present, new pods Pending with ``FailedCreatePodSandBox``;
- :class:`DnsOutage` — CoreDNS 0 ready replicas, ``kube-dns`` without ready endpoints;
- :class:`CrashLoop` — a kube-system component in CrashLoopBackOff with climbing restarts and BackOff events;
- :class:`BlockingPdb` — a PodDisruptionBudget that makes evictions fail with 429;
- :class:`ApiserverDown`, :class:`SlowApiserver`, :class:`ApiserverUnreachable` — control plane gone or slow;
- :class:`~sandbox.scale.Scale` — many nodes and pods for benchmarks.

Used by tests, benchmarks and the demo.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from sandbox.baseline import (
    COREDNS,
    COREDNS_LABELS,
    KUBE_DNS_SERVICE,
    SYSTEM_NAMESPACE,
    install_aws_node,
    install_baseline,
    install_coredns,
)
from sandbox.cluster import KWOK_CUSTOM_STATUS_ANNOTATION, KWOK_NODE_ANNOTATION, LocalCluster
from sandbox.objects import (
    MERGE_PATCH,
    Handle,
    PodTakeover,
    ScenarioError,
    bump_event,
    container,
    delete_events,
    deployment,
    force_delete_pods,
    ignore_not_found,
    now,
    pod_ready,
    pods_matching,
    ready_endpoint_count,
    record_event,
    rfc3339,
    wait_for,
)
from sandbox.proxy import FaultProxy
from sandbox.scale import Scale

__all__ = [
    "ApiserverDown",
    "ApiserverUnreachable",
    "BlockingPdb",
    "CrashLoop",
    "DnsOutage",
    "Handle",
    "NodeFailure",
    "PodIpExhaustion",
    "Scale",
    "Scenario",
    "ScenarioError",
    "SlowApiserver",
    "install_baseline",
]

SCENARIO_LABEL = "sandbox.k8s-incident-bot/scenario"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
NODE_LEASE_NAMESPACE = "kube-node-lease"


class Scenario(Protocol):
    """Anything with a ``name`` that breaks the cluster in ``apply`` and returns an undoable handle."""

    name: ClassVar[str]

    def apply(self, api: k8s.ApiClient) -> Handle: ...


def _micro_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _scenario_labels(name: str, app: str) -> dict[str, str]:
    return {"app": app, SCENARIO_LABEL: name}


def _scheduled_pods(api: k8s.ApiClient, namespace: str, labels: dict[str, str], count: int, timeout: float) -> list[k8s.V1Pod]:
    def scheduled() -> list[k8s.V1Pod]:
        return [pod for pod in pods_matching(api, namespace, labels) if pod.spec.node_name]

    wait_for(f"{count} pods {labels} scheduled in {namespace}", lambda: len(scheduled()) >= count, timeout)
    return scheduled()


def _container_status(spec: k8s.V1Container, *, state: dict[str, Any], restarts: int = 0, last_state: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": spec.name,
        "image": spec.image,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": state,
        "lastState": last_state or {},
    }


def _not_ready_conditions(pod: k8s.V1Pod, *, sandbox_ready: bool) -> list[dict[str, str]]:
    moment = rfc3339(now())
    names = ", ".join(c.name for c in pod.spec.containers)
    unready = {"status": "False", "reason": "ContainersNotReady", "message": f"containers with unready status: [{names}]"}
    return [
        {"type": "PodReadyToStartContainers", "status": "True" if sandbox_ready else "False", "lastTransitionTime": moment},
        {"type": "Initialized", "status": "True", "lastTransitionTime": moment},
        {"type": "Ready", "lastTransitionTime": moment, **unready},
        {"type": "ContainersReady", "lastTransitionTime": moment, **unready},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": moment},
    ]


# -- nodes -------------------------------------------------------------------------------------------


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
        body = {"spec": {"holderIdentity": self.holder, "leaseDurationSeconds": duration, "renewTime": _micro_time(renewed)}}
        k8s.CoordinationV1Api(api).patch_namespaced_lease(node, NODE_LEASE_NAMESPACE, body)

    def _release_lease(self, api: k8s.ApiClient, node: str) -> None:
        """Expire the foreign hold: kwok acquires the Lease on its next renewal and manages the node again."""
        expired = now() - dt.timedelta(hours=1)
        body = {"spec": {"leaseDurationSeconds": 40, "renewTime": _micro_time(expired)}}
        ignore_not_found(lambda: k8s.CoordinationV1Api(api).patch_namespaced_lease(node, NODE_LEASE_NAMESPACE, body))

    def _choose(self, core: k8s.CoreV1Api) -> list[str]:
        healthy = sorted(
            node.metadata.name
            for node in core.list_node().items
            if (node.metadata.annotations or {}).get(KWOK_NODE_ANNOTATION[0]) == KWOK_NODE_ANNOTATION[1]
            and KWOK_CUSTOM_STATUS_ANNOTATION[0] not in (node.metadata.annotations or {})
            and any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
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
                    ignore_not_found(lambda pod=pod: core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace))
                    deleted.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        return deleted

    def _revive(self, api: k8s.ApiClient, node: str) -> None:
        core = k8s.CoreV1Api(api)
        self._release_lease(api, node)
        core.patch_node(node, {"metadata": {"annotations": {KWOK_CUSTOM_STATUS_ANNOTATION[0]: None}}})
        wait_for(
            f"node {node} Ready and untainted again",
            lambda: LocalCluster.node_ready(core.read_node(node)) and not self._tainted(core, node),
            self.timeout,
        )
        wait_for(
            f"pods left Terminating on {node} to be finalized",
            lambda: not any(
                p.metadata.deletion_timestamp for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
            ),
            self.timeout,
        )


# -- pods --------------------------------------------------------------------------------------------


def ip_exhaustion_message() -> str:
    """What the kubelet reports when the AWS VPC CNI (ipamd) has no free address for a pod."""
    sandbox = secrets.token_hex(32)
    return (
        f'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "{sandbox}": '
        'plugin type="aws-cni" name="aws-cni" failed (add): add cmd: failed to assign an IP address to container: '
        "rpc error: code = Unknown desc = AssignPodIPv4Address: no available IP addresses"
    )


@dataclass
class PodIpExhaustion:
    """The subnet is out of IPs: ``aws-node`` runs, but new pods of a Deployment never get a sandbox."""

    namespace: str = "default"
    deployment: str = "checkout"
    replicas: int = 3
    image: str = "registry.k8s.io/e2e-test-images/agnhost:2.53"
    timeout: float = 60.0
    name: ClassVar[str] = "pod-ip-exhaustion"

    def apply(self, api: k8s.ApiClient) -> Handle:
        apps = k8s.AppsV1Api(api)
        labels = _scenario_labels(self.name, self.deployment)
        handle = Handle(self.name, f"{self.replicas} pods of {self.namespace}/{self.deployment} cannot get a pod IP", {"pods": [], "events": []})
        if install_aws_node(api, self.timeout):
            handle.on_undo("delete aws-node", lambda: ignore_not_found(lambda: apps.delete_namespaced_daemon_set("aws-node", SYSTEM_NAMESPACE)))
        template = {
            "metadata": {"labels": labels, "annotations": {KWOK_CUSTOM_STATUS_ANNOTATION[0]: KWOK_CUSTOM_STATUS_ANNOTATION[1]}},
            "spec": {"containers": [container("app", self.image, [("http", 8080, "TCP")])]},
        }
        apps.create_namespaced_deployment(self.namespace, deployment(self.deployment, self.namespace, self.replicas, template))
        handle.on_undo(f"delete deployment {self.deployment}", lambda: self._delete(api, labels))
        for pod in _scheduled_pods(api, self.namespace, labels, self.replicas, self.timeout):
            status = {
                "phase": "Pending",
                "conditions": _not_ready_conditions(pod, sandbox_ready=False),
                "containerStatuses": [_container_status(c, state={"waiting": {"reason": "ContainerCreating"}}) for c in pod.spec.containers],
                "startTime": rfc3339(now()),
            }
            k8s.CoreV1Api(api).patch_namespaced_pod_status(pod.metadata.name, self.namespace, {"status": status}, _content_type=MERGE_PATCH)
            handle.details["events"].append(record_event(api, pod, reason="FailedCreatePodSandBox", message=ip_exhaustion_message()))
            handle.details["pods"].append(pod.metadata.name)
        handle.on_undo("delete FailedCreatePodSandBox events", lambda: delete_events(api, self.namespace, handle.details["events"]))
        return handle

    def _delete(self, api: k8s.ApiClient, labels: dict[str, str]) -> None:
        ignore_not_found(lambda: k8s.AppsV1Api(api).delete_namespaced_deployment(self.deployment, self.namespace))
        wait_for("the ReplicaSet to be garbage-collected", lambda: not k8s.AppsV1Api(api).list_namespaced_replica_set(
            self.namespace, label_selector=f"{SCENARIO_LABEL}={self.name},app={self.deployment}").items, self.timeout)
        force_delete_pods(api, self.namespace, labels)


@dataclass
class DnsOutage:
    """CoreDNS pods stay but fail readiness: 0 ready replicas, ``kube-dns`` has no ready endpoints."""

    timeout: float = 60.0
    name: ClassVar[str] = "dns-outage"

    def apply(self, api: k8s.ApiClient) -> Handle:
        core = k8s.CoreV1Api(api)
        handle = Handle(self.name, "CoreDNS has no ready replicas; kube-dns has no ready endpoints", {"pods": [], "events": []})
        install_coredns(api, timeout=self.timeout)
        takeover = PodTakeover(api)
        handle.on_undo("give CoreDNS pods back to kwok", lambda: self._restore(api, takeover))
        for pod in pods_matching(api, SYSTEM_NAMESPACE, COREDNS_LABELS):
            takeover.take(pod)
            moment = rfc3339(now())
            status = {
                "phase": "Running",
                "conditions": _not_ready_conditions(pod, sandbox_ready=True),
                "containerStatuses": [
                    _container_status(c, state={"running": {"startedAt": moment}}) | {"started": True} for c in pod.spec.containers
                ],
            }
            core.patch_namespaced_pod_status(pod.metadata.name, SYSTEM_NAMESPACE, {"status": status}, _content_type=MERGE_PATCH)
            message = "Readiness probe failed: HTTP probe failed with statuscode: 503"
            handle.details["events"].append(record_event(api, pod, reason="Unhealthy", message=message))
            handle.details["pods"].append(pod.metadata.name)
        handle.on_undo("delete Unhealthy events", lambda: delete_events(api, SYSTEM_NAMESPACE, handle.details["events"]))
        wait_for("kube-dns without ready endpoints", lambda: ready_endpoint_count(api, SYSTEM_NAMESPACE, KUBE_DNS_SERVICE) == 0, self.timeout)
        wait_for(
            "CoreDNS with 0 ready replicas",
            lambda: not k8s.AppsV1Api(api).read_namespaced_deployment(COREDNS, SYSTEM_NAMESPACE).status.ready_replicas,
            self.timeout,
        )
        return handle

    def _restore(self, api: k8s.ApiClient, takeover: PodTakeover) -> None:
        takeover.release_all()
        wait_for("CoreDNS ready again", lambda: ready_endpoint_count(api, SYSTEM_NAMESPACE, KUBE_DNS_SERVICE) > 0, self.timeout)


@dataclass
class CrashLoop:
    """A kube-system component crash-loops: restartCount climbs every ``interval`` s, BackOff events pile up.

    By default a ``metrics-server`` Deployment is created for it; ``existing="coredns"`` takes over the
    pods of an existing Deployment instead (restored on undo).
    """

    namespace: str = SYSTEM_NAMESPACE
    deployment: str = "metrics-server"
    existing: str | None = None
    replicas: int = 1
    interval: float = 10.0
    image: str = "registry.k8s.io/metrics-server/metrics-server:v0.7.2"
    timeout: float = 60.0
    name: ClassVar[str] = "crash-loop"

    def apply(self, api: k8s.ApiClient) -> "CrashLoopHandle":
        apps = k8s.AppsV1Api(api)
        target = self.existing or self.deployment
        handle = CrashLoopHandle(self, api, f"{self.namespace}/{target} is in CrashLoopBackOff")
        if self.existing:
            selector = apps.read_namespaced_deployment(self.existing, self.namespace).spec.selector.match_labels
            takeover = PodTakeover(api)
            pods = pods_matching(api, self.namespace, selector)
            for pod in pods:
                takeover.take(pod)
            handle.on_undo(f"give {self.existing} pods back to kwok", takeover.release_all)
        else:
            labels = {"k8s-app": self.deployment, SCENARIO_LABEL: self.name}
            template = {
                "metadata": {"labels": labels, "annotations": {KWOK_CUSTOM_STATUS_ANNOTATION[0]: KWOK_CUSTOM_STATUS_ANNOTATION[1]}},
                "spec": {"containers": [container(self.deployment, self.image, [("https", 10250, "TCP")])],
                         "priorityClassName": "system-cluster-critical"},
            }
            apps.create_namespaced_deployment(self.namespace, deployment(self.deployment, self.namespace, self.replicas, template))
            handle.on_undo(f"delete deployment {self.deployment}", lambda: self._delete(api, labels))
            pods = _scheduled_pods(api, self.namespace, labels, self.replicas, self.timeout)
        handle.pods = pods
        handle.on_undo("delete BackOff events", lambda: delete_events(api, self.namespace, list(handle.events.values())))
        handle.on_undo("stop the crash ticker", handle.stop_ticking)
        handle.tick()
        handle.start_ticking()
        return handle

    def _delete(self, api: k8s.ApiClient, labels: dict[str, str]) -> None:
        ignore_not_found(lambda: k8s.AppsV1Api(api).delete_namespaced_deployment(self.deployment, self.namespace))
        wait_for("the ReplicaSet to be garbage-collected", lambda: not k8s.AppsV1Api(api).list_namespaced_replica_set(
            self.namespace, label_selector=f"{SCENARIO_LABEL}={self.name},k8s-app={self.deployment}").items, self.timeout)
        force_delete_pods(api, self.namespace, labels)


class CrashLoopHandle(Handle):
    """Handle of :class:`CrashLoop`; :meth:`tick` records one more crash now (tests call it directly)."""

    def __init__(self, scenario: CrashLoop, api: k8s.ApiClient, description: str) -> None:
        super().__init__(scenario.name, description, {"restarts": 0})
        self.scenario = scenario
        self.api = api
        self.pods: list[k8s.V1Pod] = []
        self.events: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One more crash for every pod: restartCount + 1, waiting CrashLoopBackOff, BackOff event count + 1."""
        with self._lock:
            if self._stop.is_set():
                return
            restarts = self.details["restarts"] + 1
            for pod in self.pods:
                self._crash(pod, restarts)
            self.details["restarts"] = restarts

    def _crash(self, pod: k8s.V1Pod, restarts: int) -> None:
        finished, started = now(), now() - dt.timedelta(seconds=2)
        backoff = min(10 * 2 ** (restarts - 1), 300)
        pod_ref = f"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})"
        statuses = [
            _container_status(
                c,
                restarts=restarts,
                state={"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {backoff}s restarting failed container={c.name} pod={pod_ref}"}},
                last_state={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": rfc3339(started), "finishedAt": rfc3339(finished)}},
            )
            for c in pod.spec.containers
        ]
        status = {"phase": "Running", "conditions": _not_ready_conditions(pod, sandbox_ready=True), "containerStatuses": statuses}
        k8s.CoreV1Api(self.api).patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status}, _content_type=MERGE_PATCH)
        message = f"Back-off restarting failed container {pod.spec.containers[0].name} in pod {pod_ref}"
        if pod.metadata.name in self.events:
            bump_event(self.api, pod.metadata.namespace, self.events[pod.metadata.name], restarts)
        else:
            self.events[pod.metadata.name] = record_event(self.api, pod, reason="BackOff", message=message, count=restarts)

    def start_ticking(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.scenario.interval):
                try:
                    self.tick()
                except (ApiException, OSError):
                    continue  # the apiserver may be down in a combined scenario; try again next tick

        self._thread = threading.Thread(target=loop, name="crash-loop-ticker", daemon=True)
        self._thread.start()

    def stop_ticking(self) -> None:
        with self._lock:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class BlockingPdb:
    """A Deployment whose PodDisruptionBudget allows no disruption: every eviction gets 429."""

    namespace: str = "default"
    deployment: str = "payments"
    replicas: int = 2
    image: str = "registry.k8s.io/e2e-test-images/agnhost:2.53"
    timeout: float = 60.0
    name: ClassVar[str] = "blocking-pdb"

    def apply(self, api: k8s.ApiClient) -> Handle:
        apps, policy = k8s.AppsV1Api(api), k8s.PolicyV1Api(api)
        labels = _scenario_labels(self.name, self.deployment)
        handle = Handle(self.name, f"PDB {self.namespace}/{self.deployment} allows 0 disruptions", {"pdb": self.deployment})
        template = {"metadata": {"labels": labels}, "spec": {"containers": [container("app", self.image, [("http", 8080, "TCP")])]}}
        apps.create_namespaced_deployment(self.namespace, deployment(self.deployment, self.namespace, self.replicas, template))
        handle.on_undo(f"delete deployment {self.deployment}", lambda: self._delete_deployment(api, labels))
        pdb = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": self.deployment, "namespace": self.namespace},
            "spec": {"minAvailable": self.replicas, "selector": {"matchLabels": labels}},
        }
        policy.create_namespaced_pod_disruption_budget(self.namespace, pdb)
        handle.on_undo(f"delete PDB {self.deployment}", lambda: ignore_not_found(
            lambda: policy.delete_namespaced_pod_disruption_budget(self.deployment, self.namespace)))
        wait_for(f"{self.replicas} ready pods of {self.deployment}",
                 lambda: sum(pod_ready(p) for p in pods_matching(api, self.namespace, labels)) >= self.replicas, self.timeout)
        wait_for("the disruption controller to compute the PDB", lambda: self._blocking(policy), self.timeout)
        handle.details["pods"] = [p.metadata.name for p in pods_matching(api, self.namespace, labels)]
        return handle

    def _blocking(self, policy: k8s.PolicyV1Api) -> bool:
        pdb = policy.read_namespaced_pod_disruption_budget(self.deployment, self.namespace)
        status = pdb.status
        return (
            status is not None
            and (status.observed_generation or 0) >= pdb.metadata.generation
            and status.current_healthy >= self.replicas
            and status.disruptions_allowed == 0
        )

    def _delete_deployment(self, api: k8s.ApiClient, labels: dict[str, str]) -> None:
        ignore_not_found(lambda: k8s.AppsV1Api(api).delete_namespaced_deployment(self.deployment, self.namespace))
        wait_for(f"pods of {self.deployment} gone", lambda: not pods_matching(api, self.namespace, labels), self.timeout)


# -- control plane -----------------------------------------------------------------------------------


@dataclass
class ApiserverDown:
    """kube-apiserver stopped (connection refused); undo starts it again and waits for ``/readyz``."""

    cluster: LocalCluster
    name: ClassVar[str] = "apiserver-down"

    def apply(self, api: k8s.ApiClient | None = None) -> Handle:
        self.cluster.stop_apiserver()
        handle = Handle(self.name, f"kube-apiserver at {self.cluster.server} is stopped")
        handle.on_undo("start kube-apiserver", self.cluster.start_apiserver)
        return handle


@dataclass
class SlowApiserver:
    """Every request through ``proxy`` waits ``latency`` seconds before reaching the apiserver."""

    proxy: FaultProxy
    latency: float = 2.0
    name: ClassVar[str] = "apiserver-slow"

    def apply(self, api: k8s.ApiClient | None = None) -> Handle:
        self.proxy.set_latency(self.latency)
        handle = Handle(self.name, f"apiserver behind {self.proxy.url} answers {self.latency:.1f} s late")
        handle.on_undo("remove proxy latency", lambda: self.proxy.set_latency(0.0))
        return handle


@dataclass
class ApiserverUnreachable:
    """The proxy refuses connections (``mode="refuse"``) or swallows them (``mode="blackhole"``)."""

    proxy: FaultProxy
    mode: str = "refuse"
    name: ClassVar[str] = "apiserver-unreachable"
    _modes: dict[str, str] = field(default_factory=lambda: {"refuse": "refuses connections", "blackhole": "never answers"})

    def apply(self, api: k8s.ApiClient | None = None) -> Handle:
        if self.mode not in self._modes:
            raise ScenarioError(f"unknown mode {self.mode!r}; use one of {sorted(self._modes)}")
        self.proxy.refuse() if self.mode == "refuse" else self.proxy.blackhole()
        handle = Handle(self.name, f"apiserver behind {self.proxy.url} {self._modes[self.mode]}")
        handle.on_undo("heal the proxy", self.proxy.heal)
        return handle
