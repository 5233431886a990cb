"""Small building blocks the sandbox scenarios share: manifests, waits, events, pod-status takeover, and the
nudges that make kwok look at an object again (:func:`replay_skipped_pods`).

Everything goes through the real API with the official ``kubernetes`` client. Pod status written here
survives because the pods carry ``kwok.x-k8s.io/status=custom``, which kwok is told to disregard
(see :mod:`sandbox.cluster`). Used by :mod:`sandbox.baseline` and :mod:`sandbox.scenarios`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from sandbox.cluster import KWOK_CUSTOM_STATUS_ANNOTATION, KWOK_NODE_ANNOTATION, LocalCluster
from sandbox.waiting import poll

Manifest = dict[str, Any]
NUDGE_ANNOTATION = "sandbox.k8s-incident-bot/nudge"
"""A throw-away annotation: changing it is an event for every watcher of the object, and nothing else."""
MERGE_PATCH = "application/merge-patch+json"
"""JSON merge patch: lists (conditions, containerStatuses) are replaced whole, not merged by key."""


class ScenarioError(RuntimeError):
    """A scenario could not be applied or undone; the message names the object and the state seen."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.25) -> None:
    """Poll ``predicate`` until true; :class:`ScenarioError` naming ``what`` after ``timeout`` seconds."""
    poll(predicate, timeout, what, interval=interval, error=ScenarioError)


def create_if_missing(create: Callable[[], object]) -> bool:
    """Run a create call; ``False`` (instead of an error) when the object already exists."""
    try:
        create()
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def ensure(read: Callable[[], object], create: Callable[[], object]) -> bool:
    """Create an object unless ``read`` finds it (some creates, e.g. a Service with a fixed clusterIP,
    fail with 422 rather than 409 when the object exists); returns whether it was created."""
    try:
        read()
        return False
    except ApiException as error:
        if error.status != 404:
            raise
    return create_if_missing(create)


def ignore_not_found(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 404:
            raise


# -- manifests ---------------------------------------------------------------------------------------


def container(name: str, image: str, ports: Iterable[tuple[str, int, str]] = ()) -> Manifest:
    return {
        "name": name,
        "image": image,
        "ports": [{"name": pname, "containerPort": port, "protocol": proto} for pname, port, proto in ports],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
    }


def pod_template(labels: dict[str, str], containers: list[Manifest], *, custom_status: bool = False, **spec: Any) -> Manifest:
    """A pod template; ``custom_status`` makes kwok leave its pods' status to the scenario."""
    annotations = {KWOK_CUSTOM_STATUS_ANNOTATION[0]: KWOK_CUSTOM_STATUS_ANNOTATION[1]} if custom_status else {}
    return {
        "metadata": {"labels": dict(labels), "annotations": annotations},
        "spec": {"containers": containers, "terminationGracePeriodSeconds": 30, **spec},
    }


def deployment(name: str, namespace: str, replicas: int, template: Manifest, labels: dict[str, str] | None = None) -> Manifest:
    selector = dict(template["metadata"]["labels"])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or selector},
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": template},
    }


def daemonset(name: str, namespace: str, template: Manifest) -> Manifest:
    selector = dict(template["metadata"]["labels"])
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": selector},
        "spec": {"selector": {"matchLabels": selector}, "template": template},
    }


# -- reads -------------------------------------------------------------------------------------------


def pods_matching(api: k8s.ApiClient, namespace: str, labels: dict[str, str]) -> list[k8s.V1Pod]:
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    return list(k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items)


def nudge(patch: Callable[[Manifest], object]) -> None:
    """Change :data:`NUDGE_ANNOTATION` through ``patch`` so watchers (kwok) see the object again."""
    patch({"metadata": {"annotations": {NUDGE_ANNOTATION: str(time.time_ns())}}})


def replay_skipped_pods(api: k8s.ApiClient, namespace: str, *, bound_for_s: float = 5.0) -> list[str]:
    """Nudge the pods of ``namespace`` that kwok skipped and will not look at again; returns their names.

    kwok (v0.8.0, ``pkg/kwok/controllers``) plays a pod only while it holds the Lease of the pod's node,
    and it asks its Lease *cache*. When it takes a node's Lease (a new node, or one handed back after a
    node failure) it re-lists the node's pods at once, and when that list comes back before the Lease it
    just wrote reaches its cache, every pod already bound is skipped as "read only". A kubelet resyncs its
    pods every minute; kwok never does, so such a pod stays Pending on a Ready node for good. DaemonSet pods
    that tolerate every taint (``aws-node``, as on EKS) are bound the moment their node is created, before
    kwok has taken the Lease: those are the ones this strands (a fresh clone's suite lost one for 8 minutes).

    A pod qualifies when it is Pending, bound (scheduled, or created with its node) at least ``bound_for_s``
    ago, carries no ``kwok.x-k8s.io/status=custom``, and its node is a kwok node that is Ready and not
    custom either, i.e. one kwok plays. The nudge is an event kwok then handles like any other.
    """
    core = k8s.CoreV1Api(api)
    pending = core.list_namespaced_pod(namespace, field_selector="status.phase=Pending").items
    played: dict[str, bool] = {}
    replayed = []
    for pod in pending:
        node = pod.spec.node_name
        if not node or _custom_status(pod.metadata) or _bound_at(pod) > now() - dt.timedelta(seconds=bound_for_s):
            continue
        if node not in played:
            played[node] = _played_by_kwok(core, node)
        if played[node]:
            name = pod.metadata.name
            nudge(lambda body, name=name: ignore_not_found(lambda: core.patch_namespaced_pod(name, namespace, body)))
            replayed.append(name)
    return replayed


def _custom_status(metadata: k8s.V1ObjectMeta) -> bool:
    return KWOK_CUSTOM_STATUS_ANNOTATION[0] in (metadata.annotations or {})


def _bound_at(pod: k8s.V1Pod) -> dt.datetime:
    """When the scheduler bound the pod; its creation when it was created with its node (no scheduler)."""
    scheduled = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled" and c.status == "True"), None)
    return scheduled.last_transition_time if scheduled and scheduled.last_transition_time else pod.metadata.creation_timestamp


def _played_by_kwok(core: k8s.CoreV1Api, name: str) -> bool:
    try:
        node = core.read_node(name)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return played_by_kwok(node)


def played_by_kwok(node: k8s.V1Node) -> bool:
    """A kwok node kwok is playing now: Ready, and no ``kwok.x-k8s.io/status`` of a scenario's on it."""
    kwok = (node.metadata.annotations or {}).get(KWOK_NODE_ANNOTATION[0]) == KWOK_NODE_ANNOTATION[1]
    return kwok and not _custom_status(node.metadata) and LocalCluster.node_ready(node)


def pod_ready(pod: k8s.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def ready_endpoint_count(api: k8s.ApiClient, namespace: str, service: str) -> int:
    """Ready addresses over the Service's EndpointSlices (what kube-proxy and CoreDNS clients see)."""
    slices = k8s.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return sum(
        1
        for item in slices.items
        for endpoint in (item.endpoints or [])
        if endpoint.conditions is None or endpoint.conditions.ready is not False
    )


# -- writes ------------------------------------------------------------------------------------------


def record_event(
    api: k8s.ApiClient,
    pod: k8s.V1Pod,
    *,
    reason: str,
    message: str,
    event_type: str = "Warning",
    component: str = "kubelet",
    count: int = 1,
) -> str:
    """Create a core/v1 Event about ``pod`` as the kubelet on its node would; returns the Event's name."""
    moment = rfc3339(now())
    name = f"{pod.metadata.name}.{time.time_ns():x}"
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": pod.metadata.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.metadata.name,
            "namespace": pod.metadata.namespace,
            "uid": pod.metadata.uid,
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "count": count,
        "firstTimestamp": moment,
        "lastTimestamp": moment,
        "source": {"component": component, "host": pod.spec.node_name or ""},
        "reportingComponent": component,
        "reportingInstance": pod.spec.node_name or "",
    }
    k8s.CoreV1Api(api).create_namespaced_event(pod.metadata.namespace, body)
    return name


def bump_event(api: k8s.ApiClient, namespace: str, name: str, count: int) -> None:
    """Raise an Event's ``count`` and ``lastTimestamp``, as repeated kubelet reports do."""
    body = {"count": count, "lastTimestamp": rfc3339(now())}
    k8s.CoreV1Api(api).patch_namespaced_event(name, namespace, body)


def delete_events(api: k8s.ApiClient, namespace: str, names: Iterable[str]) -> None:
    core = k8s.CoreV1Api(api)
    for name in names:
        ignore_not_found(lambda name=name: core.delete_namespaced_event(name, namespace))


def force_delete_pods(api: k8s.ApiClient, namespace: str, labels: dict[str, str]) -> None:
    """Delete pods immediately (grace 0): kwok never finalizes pods whose status it disregards."""
    core = k8s.CoreV1Api(api)
    for pod in pods_matching(api, namespace, labels):
        ignore_not_found(
            lambda pod=pod: core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
        )


class PodTakeover:
    """Take pods away from kwok (status annotation), remember their status, and give them back unchanged."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self._saved: dict[tuple[str, str], tuple[dict[str, Any], str | None]] = {}

    def take(self, pod: k8s.V1Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        if key in self._saved:
            return
        annotation = (pod.metadata.annotations or {}).get(KWOK_CUSTOM_STATUS_ANNOTATION[0])
        self.core.patch_namespaced_pod(
            pod.metadata.name,
            pod.metadata.namespace,
            {"metadata": {"annotations": {KWOK_CUSTOM_STATUS_ANNOTATION[0]: KWOK_CUSTOM_STATUS_ANNOTATION[1]}}},
        )
        self._saved[key] = (self.api.sanitize_for_serialization(pod.status), annotation)

    def finish_terminating(self) -> None:
        """Do what a kubelet does for a taken pod marked for deletion whose containers are not running: remove
        it at once (kwok leaves taken pods alone, so without this a replaced pod would stay Terminating)."""
        for namespace, name in list(self._saved):
            try:
                pod = self.core.read_namespaced_pod(name, namespace)
                if pod.metadata.deletion_timestamp is not None:
                    self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
            except ApiException as error:
                if error.status != 404:
                    raise

    def reap_in_background(self, interval: float = 0.5) -> Callable[[], None]:
        """Run :meth:`finish_terminating` every ``interval`` s in a thread (a rollout restart of the taken pods'
        workload then completes, as with a kubelet); returns the function that stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.finish_terminating()
                except (ApiException, OSError):
                    continue  # the apiserver may be down in a combined scenario; look again

        def stop_reaping() -> None:
            stop.set()
            thread.join(10)

        thread = threading.Thread(target=loop, name="pod-takeover-reaper", daemon=True)
        thread.start()
        return stop_reaping

    def release_all(self) -> None:
        """Restore every taken pod's status and annotation; pods deleted in between are skipped."""
        for (namespace, name), (status, annotation) in list(self._saved.items()):
            try:
                self.core.patch_namespaced_pod_status(name, namespace, {"status": status}, _content_type=MERGE_PATCH)
                self.core.patch_namespaced_pod(
                    name, namespace, {"metadata": {"annotations": {KWOK_CUSTOM_STATUS_ANNOTATION[0]: annotation}}}
                )
            except ApiException as error:
                if error.status != 404:
                    raise
            del self._saved[(namespace, name)]


class Handle:
    """What :meth:`apply` of a scenario returns: a description, details for assertions, and ``undo()``.

    Undo steps run in reverse order of registration, once; ``with scenario.apply(api) as handle:``
    undoes on leaving the block.
    """

    def __init__(self, name: str, description: str, details: dict[str, Any] | None = None) -> None:
        self.name = name
        self.description = description
        self.details: dict[str, Any] = details or {}
        self._undo_steps: list[tuple[str, Callable[[], None]]] = []
        self.undone = False

    def on_undo(self, what: str, step: Callable[[], None]) -> None:
        """Register ``step`` (described by ``what`` in error messages) to run on :meth:`undo`."""
        self._undo_steps.append((what, step))

    def undo(self) -> None:
        """Restore what the scenario changed; every step runs even if an earlier one fails."""
        if self.undone:
            return
        self.undone = True
        failures = []
        for what, step in reversed(self._undo_steps):
            try:
                step()
            except Exception as error:  # noqa: BLE001 - collected and re-raised below with context
                failures.append(f"{what}: {type(error).__name__}: {error}")
        if failures:
            raise ScenarioError(f"undoing {self.name} left the cluster partly broken:\n" + "\n".join(failures))

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.undo()

    def __repr__(self) -> str:
        return f"<Handle {self.name}: {self.description}{' (undone)' if self.undone else ''}>"
