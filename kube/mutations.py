"""The risky actions against the Kubernetes API: validate, server-side dry-run, and the real change.

:class:`KubeExecutor` is the production executor of ``workers.actions``: ``prepare`` checks the
request against the live cluster (the object exists, the node is not already cordoned, the scale
differs, …) and dry-runs it with ``dryRun=All`` to say in words what will change; ``execute``
makes the change, calling ``guard()`` (the action lock is still ours) before every mutating call:

- cordon / uncordon: merge-patch ``spec.unschedulable``;
- drain: cordon, then the Eviction API for every pod on the node except DaemonSet-owned and mirror
  pods; a 429 (a PodDisruptionBudget refuses) is retried until ``--timeout`` and reported by pod;
- delete node; rollout restart (``kubectl.kubernetes.io/restartedAt`` on the pod template, as
  ``kubectl rollout restart`` does); scale a Deployment through its scale subresource; delete a pod.

API failures become :class:`ObjectNotFound`, :class:`NotPermitted`, :class:`ClusterError` or
:class:`ClusterUnreachable` with a message for Slack (:func:`api_error`). An executor acts as one
identity: the bot's own, or (``kube.impersonation``) the Kubernetes user mapped to the requester.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from incident.actions import DEFAULT_DRAIN_TIMEOUT, ActionKind, ActionRequest, Outcome, split_target
from incident.errors import ClusterError, ClusterUnreachable, NotPermitted, ObjectNotFound
from incident.settings import Settings

MERGE_PATCH = "application/merge-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
EVICTION_RETRY_SECONDS = 2.0
LISTED = 8
"""How many pod names a summary lists before "and N more"."""

T = TypeVar("T")
Guard = Callable[[], None]
Progress = Callable[[str], None]


def api_client_for(settings: Settings) -> k8s.ApiClient:
    """The ApiClient of ``kube.client`` (in-cluster or kubeconfig; never retries a read that timed out)."""
    from kube.client import build_api_client

    return build_api_client(settings)


BOT_IDENTITY = "The bot's Kubernetes identity"


def api_error(error: Exception, what: str, verb: str, who: str = BOT_IDENTITY) -> ClusterError | NotPermitted:
    """One Kubernetes failure → the bot's error for it, with a message saying what to do."""
    if isinstance(error, ApiException):
        status = error.status or 0
        detail = _message(error)
        if status == 404:
            return ObjectNotFound(f"{what} does not exist.", hint="Check the name (and namespace) with kubectl get.")
        if status in (401, 403):
            hint = ("Grant the bot's service account this verb in RBAC, or run it by hand." if who == BOT_IDENTITY
                    else "The cluster's RBAC decided: ask a cluster admin to grant this identity the verb, or have "
                         "someone whose identity has it run the action.")
            return NotPermitted(f"{who} may not {verb} {what}: {detail}", hint=hint)
        if status == 409:
            return ClusterError(f"Conflict while trying to {verb} {what}: {detail}", hint="Try again.")
        if status == 422:
            return ClusterError(f"The API server refused to {verb} {what}: {detail}")
        if status == 429:
            return ClusterError(f"Too many requests while trying to {verb} {what}: {detail}")
        return ClusterError(f"The API server failed to {verb} {what} (HTTP {status}): {detail}",
                            hint="Run an assessment: the control plane may be unhealthy.")
    return ClusterUnreachable(f"The API server could not be reached to {verb} {what} ({type(error).__name__}).",
                              hint="Run an assessment: the control plane may be down.")


def _message(error: ApiException) -> str:
    import json

    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or error.reason or "no detail")[:400]


@dataclass
class _Pods:
    """A node's pods sorted by what a drain does with them."""

    evict: list[k8s.V1Pod] = field(default_factory=list)
    daemonset: list[str] = field(default_factory=list)
    mirror: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    terminating: list[str] = field(default_factory=list)


def _ref(pod: k8s.V1Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _listing(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:LISTED])
    return shown + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")


class KubeExecutor:
    """Validates, dry-runs and runs action requests against one cluster."""

    def __init__(self, api: k8s.ApiClient, *, request_timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, who: str = BOT_IDENTITY) -> None:
        self.api = api
        self.who = who
        """Who the API sees, for messages ("The bot's Kubernetes identity", "Kubernetes user `alice`")."""
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.timeout = request_timeout
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> "KubeExecutor":
        return cls(api_client_for(settings), request_timeout=settings.kube_request_timeout_seconds)

    def _call(self, what: str, verb: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, _request_timeout=self.timeout, **kwargs)
        except (ApiException, Urllib3Error, OSError) as error:
            raise api_error(error, what, verb, self.who) from error

    # --- validation and dry-run -----------------------------------------------------------------
    def prepare(self, request: ActionRequest) -> str:
        """Check against the live cluster and dry-run; the summary of what will change."""
        kind = request.kind
        if kind in (ActionKind.CORDON, ActionKind.UNCORDON):
            return self._prepare_cordon(request.target, cordon=kind == ActionKind.CORDON)
        if kind == ActionKind.DRAIN:
            return self._prepare_drain(request)
        if kind == ActionKind.DELETE_NODE:
            return self._prepare_delete_node(request.target)
        namespace, name = split_target(request.target)
        assert namespace is not None
        self._namespace_exists(namespace)
        if kind == ActionKind.RESTART:
            return self._prepare_restart(str(request.params.get("workload", "deployment")), namespace, name)
        if kind == ActionKind.SCALE:
            return self._prepare_scale(namespace, name, int(request.params["replicas"]))
        return self._prepare_delete_pod(namespace, name)

    def _node(self, name: str) -> k8s.V1Node:
        return self._call(f"Node `{name}`", "read", self.core.read_node, name)

    def _namespace_exists(self, namespace: str) -> None:
        try:
            self._call(f"Namespace `{namespace}`", "read", self.core.read_namespace, namespace)
        except NotPermitted:
            pass  # may not read namespaces; the object read below still answers

    def _pods_on(self, node: str) -> _Pods:
        pods = self._call(f"the pods of node `{node}`", "list", self.core.list_pod_for_all_namespaces,
                          field_selector=f"spec.nodeName={node}")
        sorted_pods = _Pods()
        for pod in pods.items:
            owners = pod.metadata.owner_references or []
            if pod.metadata.deletion_timestamp is not None:
                sorted_pods.terminating.append(_ref(pod))
            elif MIRROR_ANNOTATION in (pod.metadata.annotations or {}):
                sorted_pods.mirror.append(_ref(pod))
            elif any(ref.kind == "DaemonSet" and ref.controller for ref in owners):
                sorted_pods.daemonset.append(_ref(pod))
            else:
                if not any(ref.controller for ref in owners):
                    sorted_pods.unmanaged.append(_ref(pod))
                sorted_pods.evict.append(pod)
        return sorted_pods

    def _prepare_cordon(self, name: str, *, cordon: bool) -> str:
        node = self._node(name)
        unschedulable = bool(node.spec.unschedulable) if node.spec else False
        if cordon and unschedulable:
            raise ClusterError(f"Node `{name}` is already cordoned (unschedulable); nothing to do.",
                               hint=f"`/k8s drain node {name}` moves its pods away; `/k8s uncordon node {name}` undoes it.")
        if not cordon and not unschedulable:
            raise ClusterError(f"Node `{name}` is not cordoned; nothing to do.")
        self._call(f"Node `{name}`", "patch", self.core.patch_node, name, {"spec": {"unschedulable": cordon}},
                   dry_run="All", _content_type=MERGE_PATCH)
        running = len(self._pods_on(name).evict)
        if cordon:
            return (f"• node `{name}`: spec.unschedulable false → true — no new pods are scheduled on it\n"
                    f"• its {running} evictable pod(s) keep running (drain moves them)")
        return f"• node `{name}`: spec.unschedulable true → false — it accepts new pods again"

    def _prepare_drain(self, request: ActionRequest) -> str:
        name = request.target
        node = self._node(name)
        pods = self._pods_on(name)
        lines = []
        if node.spec and node.spec.unschedulable:
            lines.append(f"• node `{name}` is already cordoned")
        else:
            self._call(f"Node `{name}`", "patch", self.core.patch_node, name, {"spec": {"unschedulable": True}},
                       dry_run="All", _content_type=MERGE_PATCH)
            lines.append(f"• cordon node `{name}` (spec.unschedulable false → true)")
        blocked = []
        for pod in pods.evict:
            if self._evict(pod, request.params.get("grace"), dry_run=True) == "blocked":
                blocked.append(_ref(pod))
        names = [_ref(p) for p in pods.evict]
        lines.append(f"• evict {len(names)} pod(s)" + (f": {_listing(names)}" if names else " (none to evict)"))
        if blocked:
            timeout = request.params.get("timeout") or DEFAULT_DRAIN_TIMEOUT
            lines.append(f"• :warning: {len(blocked)} eviction(s) refused right now by a PodDisruptionBudget: "
                         f"{_listing(blocked)} — retried for up to {timeout}s, then reported")
        if pods.unmanaged:
            lines.append(f"• :warning: not managed by a controller, will not come back: {_listing(pods.unmanaged)}")
        skipped = len(pods.daemonset) + len(pods.mirror)
        if skipped:
            lines.append(f"• skip {len(pods.daemonset)} DaemonSet pod(s) and {len(pods.mirror)} mirror pod(s)")
        if pods.terminating:
            lines.append(f"• {len(pods.terminating)} pod(s) already terminating")
        return "\n".join(lines)

    def _prepare_delete_node(self, name: str) -> str:
        self._node(name)
        pods = self._pods_on(name)
        self._call(f"Node `{name}`", "delete", self.core.delete_node, name, dry_run="All")
        total = len(pods.evict) + len(pods.daemonset) + len(pods.mirror)
        return (f"• node `{name}` is removed from the cluster\n"
                f"• its {total} pod(s) are then deleted by the pod garbage collector "
                f"({len(pods.evict)} managed elsewhere would be rescheduled, PodDisruptionBudgets are *not* consulted)")

    def _workload(self, workload: str, namespace: str, name: str) -> Any:
        readers = {"deployment": self.apps.read_namespaced_deployment, "daemonset": self.apps.read_namespaced_daemon_set,
                   "statefulset": self.apps.read_namespaced_stateful_set}
        return self._call(f"{workload.capitalize()} `{namespace}/{name}`", "read", readers[workload], name, namespace)

    def _restart_patch(self, workload: str, namespace: str, name: str, stamp: str, *, dry_run: bool) -> Any:
        patchers = {"deployment": self.apps.patch_namespaced_deployment,
                    "daemonset": self.apps.patch_namespaced_daemon_set,
                    "statefulset": self.apps.patch_namespaced_stateful_set}
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        extra = {"dry_run": "All"} if dry_run else {}
        return self._call(f"{workload.capitalize()} `{namespace}/{name}`", "patch", patchers[workload], name, namespace,
                          body, _content_type=MERGE_PATCH, **extra)

    def _prepare_restart(self, workload: str, namespace: str, name: str) -> str:
        obj = self._workload(workload, namespace, name)
        if workload == "deployment" and obj.spec.paused:
            raise ClusterError(f"Deployment `{namespace}/{name}` is paused; a restart would not roll out.",
                               hint="Resume it first (kubectl rollout resume).")
        self._restart_patch(workload, namespace, name, _now_iso(), dry_run=True)
        previous = ((obj.spec.template.metadata and obj.spec.template.metadata.annotations) or {}).get(RESTARTED_AT)
        count = obj.status.desired_number_scheduled if workload == "daemonset" else obj.spec.replicas
        strategy = getattr(obj.spec, "strategy", None) or getattr(obj.spec, "update_strategy", None)
        how = strategy.type if strategy is not None and strategy.type else "RollingUpdate"
        return (f"• pod template annotation `{RESTARTED_AT}`: {previous or 'unset'} → now\n"
                f"• all {count} pod(s) of {workload} `{namespace}/{name}` are replaced ({how})")

    def _prepare_scale(self, namespace: str, name: str, replicas: int) -> str:
        what = f"Deployment `{namespace}/{name}`"
        scale = self._call(what, "read", self.apps.read_namespaced_deployment_scale, name, namespace)
        current = scale.spec.replicas if scale.spec and scale.spec.replicas is not None else 0
        if current == replicas:
            raise ClusterError(f"{what} already has {replicas} replica(s); nothing to do.")
        self._call(what, "scale", self.apps.patch_namespaced_deployment_scale, name, namespace,
                   {"spec": {"replicas": replicas}}, dry_run="All", _content_type=MERGE_PATCH)
        effect = "all its pods stop" if replicas == 0 else (
            f"{replicas - current} pod(s) added" if replicas > current else f"{current - replicas} pod(s) removed")
        return f"• {what}: replicas {current} → {replicas} ({effect})"

    def _prepare_delete_pod(self, namespace: str, name: str) -> str:
        what = f"Pod `{namespace}/{name}`"
        pod = self._call(what, "read", self.core.read_namespaced_pod, name, namespace)
        self._call(what, "delete", self.core.delete_namespaced_pod, name, namespace, dry_run="All")
        owner = next((ref for ref in pod.metadata.owner_references or [] if ref.controller), None)
        fate = (f"its {owner.kind} `{owner.name}` creates a replacement" if owner
                else ":warning: no controller owns it: it will *not* come back")
        node = pod.spec.node_name if pod.spec else None
        return f"• pod `{namespace}/{name}`" + (f" on node `{node}`" if node else "") + f" is deleted; {fate}"

    # --- the real changes -------------------------------------------------------------------------
    def execute(self, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
        kind = request.kind
        if kind in (ActionKind.CORDON, ActionKind.UNCORDON):
            cordon = kind == ActionKind.CORDON
            guard()
            self._call(f"Node `{request.target}`", "patch", self.core.patch_node, request.target,
                       {"spec": {"unschedulable": cordon}}, _content_type=MERGE_PATCH)
            state = "cordoned (unschedulable)" if cordon else "uncordoned (schedulable again)"
            return Outcome(True, f"Node `{request.target}` is {state}.")
        if kind == ActionKind.DRAIN:
            return self._drain(request, guard, progress)
        if kind == ActionKind.DELETE_NODE:
            guard()
            self._call(f"Node `{request.target}`", "delete", self.core.delete_node, request.target)
            return Outcome(True, f"Node `{request.target}` was deleted from the cluster.")
        namespace, name = split_target(request.target)
        assert namespace is not None
        if kind == ActionKind.RESTART:
            workload = str(request.params.get("workload", "deployment"))
            stamp = _now_iso()
            guard()
            self._restart_patch(workload, namespace, name, stamp, dry_run=False)
            return Outcome(True, f"Rollout restart of {workload} `{namespace}/{name}` started "
                                 f"(`{RESTARTED_AT}={stamp}`).")
        if kind == ActionKind.SCALE:
            replicas = int(request.params["replicas"])
            what = f"Deployment `{namespace}/{name}`"
            before = self._call(what, "read", self.apps.read_namespaced_deployment_scale, name, namespace)
            guard()
            self._call(what, "scale", self.apps.patch_namespaced_deployment_scale, name, namespace,
                       {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH)
            return Outcome(True, f"{what} scaled {before.spec.replicas} → {replicas} replica(s).")
        guard()
        self._call(f"Pod `{request.target}`", "delete", self.core.delete_namespaced_pod, name, namespace)
        return Outcome(True, f"Pod `{request.target}` was deleted.")

    def _evict(self, pod: k8s.V1Pod, grace: Any, *, dry_run: bool) -> str:
        """One eviction: ``evicted``, ``gone`` (404) or ``blocked`` (429: a PodDisruptionBudget says no)."""
        options = k8s.V1DeleteOptions(grace_period_seconds=int(grace) if grace is not None else None,
                                      dry_run=["All"] if dry_run else None)
        body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace),
                              delete_options=options)
        extra = {"dry_run": "All"} if dry_run else {}
        try:
            self.core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body,
                                                     _request_timeout=self.timeout, **extra)
        except ApiException as error:
            if error.status == 429:
                return "blocked"
            if error.status == 404:
                return "gone"
            raise api_error(error, f"Pod `{_ref(pod)}`", "evict", self.who) from error
        except (Urllib3Error, OSError) as error:
            raise api_error(error, f"Pod `{_ref(pod)}`", "evict", self.who) from error
        return "evicted"

    def _drain(self, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
        name = request.target
        timeout = float(request.params.get("timeout") or DEFAULT_DRAIN_TIMEOUT)
        deadline = time.monotonic() + timeout
        node = self._node(name)
        if not (node.spec and node.spec.unschedulable):
            guard()
            self._call(f"Node `{name}`", "patch", self.core.patch_node, name, {"spec": {"unschedulable": True}},
                       _content_type=MERGE_PATCH)
        pods = self._pods_on(name)
        pending = {_ref(p): p for p in pods.evict}
        total, evicted, blocked = len(pending), [], {}  # type: ignore[var-annotated]
        progress(f"cordoned `{name}`; evicting {total} pod(s)")
        while pending:
            for ref, pod in list(pending.items()):
                guard()
                result = self._evict(pod, request.params.get("grace"), dry_run=False)
                if result == "blocked":
                    blocked[ref] = blocked.get(ref, 0) + 1
                    continue
                evicted.append(ref)
                blocked.pop(ref, None)
                del pending[ref]
            if not pending:
                break
            progress(f"evicted {len(evicted)}/{total}; {len(pending)} refused by a PodDisruptionBudget, retrying")
            if time.monotonic() + EVICTION_RETRY_SECONDS > deadline:
                break
            self._sleep(EVICTION_RETRY_SECONDS)
        skipped = len(pods.daemonset) + len(pods.mirror)
        skip_text = f" Skipped {len(pods.daemonset)} DaemonSet and {len(pods.mirror)} mirror pod(s)." if skipped else ""
        if pending:
            refused = ", ".join(f"`{ref}` ({blocked.get(ref, 0)} tries)" for ref in sorted(pending))
            return Outcome(False, f"Drain of `{name}` incomplete after {int(timeout)}s: the node is cordoned and "
                                  f"{len(evicted)} of {total} pod(s) were evicted; a PodDisruptionBudget kept refusing "
                                  f"(HTTP 429): {refused}.{skip_text} Fix the budget or its pods, then drain again.")
        gone = self._wait_gone(name, set(evicted), deadline, progress)
        waiting = "" if gone else " Some evicted pods are still terminating."
        return Outcome(True, f"Node `{name}` drained: cordoned, {len(evicted)} pod(s) evicted.{skip_text}{waiting}")

    def _wait_gone(self, node: str, refs: set[str], deadline: float, progress: Progress) -> bool:
        """Wait (until the drain's deadline) for the evicted pods to leave the node."""
        while refs:
            pods = self._call(f"the pods of node `{node}`", "list", self.core.list_pod_for_all_namespaces,
                              field_selector=f"spec.nodeName={node}")
            left = {_ref(p) for p in pods.items} & refs
            if not left:
                return True
            if time.monotonic() >= deadline:
                return False
            progress(f"waiting for {len(left)} evicted pod(s) to terminate")
            self._sleep(1.0)
        return True


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
