"""The node kinds against the Kubernetes API: cordon, uncordon, drain, delete node, label, unlabel.

- cordon / uncordon: merge-patch ``spec.unschedulable``;
- drain: cordon, then the Eviction API for every pod on the node except DaemonSet-owned and mirror
  pods; a 429 (a PodDisruptionBudget refuses) is retried until ``--timeout`` and reported by pod;
- delete node: the runbook's isolation step (its pods go with it, budgets are not consulted);
- label / unlabel: merge-patch one key of ``metadata.labels`` (``null`` removes it) — the runbook's
  restore step re-applies the labels a replaced node had. Nothing else of the node is touched.

Each kind refuses, before any confirmation, when there is nothing to do (already cordoned, the label
already has that value, …). One :class:`kube.actions.api.KindExecutor` per kind in :data:`EXECUTORS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from incident.action_kinds import DEFAULT_DRAIN_TIMEOUT
from incident.actions import ActionRequest, Outcome
from incident.errors import ClusterError
from kube.actions.api import ClusterApi, Guard, KindExecutor, Progress, api_error, listing

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
EVICTION_RETRY_SECONDS = 2.0


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


def _pods_on(api: ClusterApi, node: str) -> _Pods:
    pods = api.call(f"the pods of node `{node}`", "list", api.core.list_pod_for_all_namespaces,
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


# --- cordon / uncordon ----------------------------------------------------------------------------------


def _prepare_schedulable(api: ClusterApi, name: str, *, cordon: bool) -> str:
    node = api.node(name)
    unschedulable = bool(node.spec.unschedulable) if node.spec else False
    if cordon and unschedulable:
        raise ClusterError(f"Node `{name}` is already cordoned (unschedulable); nothing to do.",
                           hint=f"`/k8s drain node {name}` moves its pods away; `/k8s uncordon node {name}` undoes it.")
    if not cordon and not unschedulable:
        raise ClusterError(f"Node `{name}` is not cordoned; nothing to do.")
    api.patch_node(name, {"spec": {"unschedulable": cordon}}, dry_run=True)
    running = len(_pods_on(api, name).evict)
    if cordon:
        return (f"• node `{name}`: spec.unschedulable false → true — no new pods are scheduled on it\n"
                f"• its {running} evictable pod(s) keep running (drain moves them)")
    return f"• node `{name}`: spec.unschedulable true → false — it accepts new pods again"


def _execute_schedulable(api: ClusterApi, request: ActionRequest, guard: Guard, *, cordon: bool) -> Outcome:
    guard()
    api.patch_node(request.target, {"spec": {"unschedulable": cordon}}, dry_run=False)
    state = "cordoned (unschedulable)" if cordon else "uncordoned (schedulable again)"
    return Outcome(True, f"Node `{request.target}` is {state}.")


def prepare_cordon(api: ClusterApi, request: ActionRequest) -> str:
    return _prepare_schedulable(api, request.target, cordon=True)


def execute_cordon(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    return _execute_schedulable(api, request, guard, cordon=True)


def prepare_uncordon(api: ClusterApi, request: ActionRequest) -> str:
    return _prepare_schedulable(api, request.target, cordon=False)


def execute_uncordon(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    return _execute_schedulable(api, request, guard, cordon=False)


# --- drain ------------------------------------------------------------------------------------------------


def _evict(api: ClusterApi, pod: k8s.V1Pod, grace: Any, *, dry_run: bool) -> str:
    """One eviction: ``evicted``, ``gone`` (404) or ``blocked`` (429: a PodDisruptionBudget says no)."""
    options = k8s.V1DeleteOptions(grace_period_seconds=int(grace) if grace is not None else None,
                                  dry_run=["All"] if dry_run else None)
    body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace),
                          delete_options=options)
    extra = {"dry_run": "All"} if dry_run else {}
    try:
        api.core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body,
                                                _request_timeout=api.timeout, **extra)
    except ApiException as error:
        if error.status == 429:
            return "blocked"
        if error.status == 404:
            return "gone"
        raise api_error(error, f"Pod `{_ref(pod)}`", "evict", api.who) from error
    except (Urllib3Error, OSError) as error:
        raise api_error(error, f"Pod `{_ref(pod)}`", "evict", api.who) from error
    return "evicted"


def prepare_drain(api: ClusterApi, request: ActionRequest) -> str:
    name = request.target
    node = api.node(name)
    pods = _pods_on(api, name)
    lines = []
    if node.spec and node.spec.unschedulable:
        lines.append(f"• node `{name}` is already cordoned")
    else:
        api.patch_node(name, {"spec": {"unschedulable": True}}, dry_run=True)
        lines.append(f"• cordon node `{name}` (spec.unschedulable false → true)")
    grace = request.params.get("grace")
    blocked = [_ref(pod) for pod in pods.evict if _evict(api, pod, grace, dry_run=True) == "blocked"]
    names = [_ref(p) for p in pods.evict]
    lines.append(f"• evict {len(names)} pod(s)" + (f": {listing(names)}" if names else " (none to evict)"))
    if blocked:
        timeout = request.params.get("timeout") or DEFAULT_DRAIN_TIMEOUT
        lines.append(f"• :warning: {len(blocked)} eviction(s) refused right now by a PodDisruptionBudget: "
                     f"{listing(blocked)} — retried for up to {timeout}s, then reported")
    if pods.unmanaged:
        lines.append(f"• :warning: not managed by a controller, will not come back: {listing(pods.unmanaged)}")
    if pods.daemonset or pods.mirror:
        lines.append(f"• skip {len(pods.daemonset)} DaemonSet pod(s) and {len(pods.mirror)} mirror pod(s)")
    if pods.terminating:
        lines.append(f"• {len(pods.terminating)} pod(s) already terminating")
    return "\n".join(lines)


def execute_drain(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    name = request.target
    timeout = float(request.params.get("timeout") or DEFAULT_DRAIN_TIMEOUT)
    deadline = time.monotonic() + timeout
    node = api.node(name)
    if not (node.spec and node.spec.unschedulable):
        guard()
        api.patch_node(name, {"spec": {"unschedulable": True}}, dry_run=False)
    pods = _pods_on(api, name)
    pending = {_ref(p): p for p in pods.evict}
    total, evicted, blocked = len(pending), [], {}  # type: ignore[var-annotated]
    progress(f"cordoned `{name}`; evicting {total} pod(s)")
    while pending:
        for ref, pod in list(pending.items()):
            guard()
            if _evict(api, pod, request.params.get("grace"), dry_run=False) == "blocked":
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
        api.sleep(EVICTION_RETRY_SECONDS)
    skipped = len(pods.daemonset) + len(pods.mirror)
    skip_text = f" Skipped {len(pods.daemonset)} DaemonSet and {len(pods.mirror)} mirror pod(s)." if skipped else ""
    if pending:
        refused = ", ".join(f"`{ref}` ({blocked.get(ref, 0)} tries)" for ref in sorted(pending))
        return Outcome(False, f"Drain of `{name}` incomplete after {int(timeout)}s: the node is cordoned and "
                              f"{len(evicted)} of {total} pod(s) were evicted; a PodDisruptionBudget kept refusing "
                              f"(HTTP 429): {refused}.{skip_text} Fix the budget or its pods, then drain again.")
    gone = _wait_gone(api, name, set(evicted), deadline, progress)
    waiting = "" if gone else " Some evicted pods are still terminating."
    return Outcome(True, f"Node `{name}` drained: cordoned, {len(evicted)} pod(s) evicted.{skip_text}{waiting}")


def _wait_gone(api: ClusterApi, node: str, refs: set[str], deadline: float, progress: Progress) -> bool:
    """Wait (until the drain's deadline) for the evicted pods to leave the node."""
    while refs:
        pods = api.call(f"the pods of node `{node}`", "list", api.core.list_pod_for_all_namespaces,
                        field_selector=f"spec.nodeName={node}")
        left = {_ref(p) for p in pods.items} & refs
        if not left:
            return True
        if time.monotonic() >= deadline:
            return False
        progress(f"waiting for {len(left)} evicted pod(s) to terminate")
        api.sleep(1.0)
    return True


# --- delete node ------------------------------------------------------------------------------------------


def prepare_delete_node(api: ClusterApi, request: ActionRequest) -> str:
    name = request.target
    api.node(name)
    pods = _pods_on(api, name)
    api.call(f"Node `{name}`", "delete", api.core.delete_node, name, dry_run="All")
    total = len(pods.evict) + len(pods.daemonset) + len(pods.mirror)
    return (f"• node `{name}` is removed from the cluster\n"
            f"• its {total} pod(s) are then deleted by the pod garbage collector "
            f"({len(pods.evict)} managed elsewhere would be rescheduled, PodDisruptionBudgets are *not* consulted)")


def execute_delete_node(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    guard()
    api.call(f"Node `{request.target}`", "delete", api.core.delete_node, request.target)
    return Outcome(True, f"Node `{request.target}` was deleted from the cluster.")


# --- label / unlabel --------------------------------------------------------------------------------------


def _labels(api: ClusterApi, name: str) -> dict[str, str]:
    node = api.node(name)
    return dict((node.metadata.labels if node.metadata else None) or {})


def prepare_label(api: ClusterApi, request: ActionRequest) -> str:
    name, key, value = request.target, str(request.params["key"]), str(request.params.get("value", ""))
    current = _labels(api, name).get(key)
    if current == value:
        raise ClusterError(f"Node `{name}` already has label `{key}={value}`; nothing to do.")
    api.patch_node(name, {"metadata": {"labels": {key: value}}}, dry_run=True)
    before = "unset" if current is None else f"`{current}`"
    return (f"• node `{name}`: label `{key}`: {before} → `{value}`\n"
            "• nothing else changes; pods whose node selector or affinity needs it may now be scheduled here")


def execute_label(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    name, key, value = request.target, str(request.params["key"]), str(request.params.get("value", ""))
    guard()
    api.patch_node(name, {"metadata": {"labels": {key: value}}}, dry_run=False)
    return Outcome(True, f"Node `{name}` has label `{key}={value}`.")


def prepare_unlabel(api: ClusterApi, request: ActionRequest) -> str:
    name, key = request.target, str(request.params["key"])
    labels = _labels(api, name)
    if key not in labels:
        raise ClusterError(f"Node `{name}` has no label `{key}`; nothing to do.")
    api.patch_node(name, {"metadata": {"labels": {key: None}}}, dry_run=True)
    return (f"• node `{name}`: label `{key}` (now `{labels[key]}`) is removed\n"
            "• running pods stay; new pods that select on it are no longer scheduled here")


def execute_unlabel(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    name, key = request.target, str(request.params["key"])
    guard()
    api.patch_node(name, {"metadata": {"labels": {key: None}}}, dry_run=False)
    return Outcome(True, f"Label `{key}` was removed from node `{name}`.")


EXECUTORS: tuple[KindExecutor, ...] = (
    KindExecutor("cordon", prepare_cordon, execute_cordon),
    KindExecutor("uncordon", prepare_uncordon, execute_uncordon),
    KindExecutor("drain", prepare_drain, execute_drain),
    KindExecutor("delete-node", prepare_delete_node, execute_delete_node),
    KindExecutor("label", prepare_label, execute_label),
    KindExecutor("unlabel", prepare_unlabel, execute_unlabel),
)
