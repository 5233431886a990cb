"""A kube-system component in CrashLoopBackOff: restartCount climbs on a timer, BackOff events pile up; a rollout
restart heals it (its replaced pods are removed as a kubelet would, the new ones run)."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import ClassVar

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from sandbox.baseline import SYSTEM_NAMESPACE
from sandbox.objects import (
    MERGE_PATCH,
    Handle,
    PodTakeover,
    bump_event,
    container,
    delete_events,
    deployment,
    force_delete_pods,
    ignore_not_found,
    now,
    pod_template,
    pods_matching,
    record_event,
    rfc3339,
    wait_for,
)
from sandbox.scenarios.pod_status import SCENARIO_LABEL, container_status, not_ready_conditions, scheduled_pods


REAP_INTERVAL_S = 0.5
"""How often the ticker removes crashing pods a rollout replaced (a kubelet would at once: none is running)."""


@dataclass
class CrashLoop:
    """A kube-system component crash-loops: restartCount climbs every ``interval`` s, BackOff events pile up.

    By default a ``metrics-server`` Deployment is created for it; ``existing="coredns"`` takes over the
    pods of an existing Deployment instead (restored on undo). Either way only the pods present now crash
    (taken away from kwok): a rollout restart replaces them with pods that run, so the runbook's step heals it.
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
            pods = pods_matching(api, self.namespace, selector)
        else:
            labels = {"k8s-app": self.deployment, SCENARIO_LABEL: self.name}
            template = pod_template(
                labels,
                [container(self.deployment, self.image, [("https", 10250, "TCP")])],
                priorityClassName="system-cluster-critical",
            )
            apps.create_namespaced_deployment(self.namespace, deployment(self.deployment, self.namespace, self.replicas, template))
            handle.on_undo(f"delete deployment {self.deployment}", lambda: self._delete(api, labels))
            pods = scheduled_pods(api, self.namespace, labels, self.replicas, self.timeout)
        # The crash lives in these pods (a bad state, not the template): a rollout restart replaces them with
        # pods kwok runs normally, as the runbook's restart would on a real cluster.
        takeover = handle.takeover
        for pod in pods:
            takeover.take(pod)
        handle.on_undo(f"give the {target} pods back to kwok", takeover.release_all)
        handle.on_undo("stop removing replaced pods", takeover.reap_in_background(REAP_INTERVAL_S))
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
        self.takeover = PodTakeover(api)
        """The crashing pods, taken from kwok; one replaced by a rollout is removed as a kubelet would."""
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
            container_status(
                c,
                restarts=restarts,
                state={"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {backoff}s restarting failed container={c.name} pod={pod_ref}"}},
                last_state={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": rfc3339(started), "finishedAt": rfc3339(finished)}},
            )
            for c in pod.spec.containers
        ]
        status = {"phase": "Running", "conditions": not_ready_conditions(pod, sandbox_ready=True), "containerStatuses": statuses}
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
                    continue  # the apiserver may be down in a combined scenario (or a pod replaced); next tick

        self._thread = threading.Thread(target=loop, name="crash-loop-ticker", daemon=True)
        self._thread.start()

    def stop_ticking(self) -> None:
        with self._lock:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
