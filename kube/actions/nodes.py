"""The node kinds against the Kubernetes API: cordon, uncordon, drain, delete node, label, unlabel, restore node.

- cordon / uncordon: merge-patch ``spec.unschedulable``;
- drain: cordon, then the Eviction API for every pod on the node except DaemonSet-owned and mirror
  pods; a 429 (a PodDisruptionBudget refuses) is retried until ``--timeout`` and reported by pod;
- delete node: the runbook's isolation step (its pods go with it, budgets are not consulted);
- label / unlabel: merge-patch one key of ``metadata.labels`` (``null`` removes it) — the runbook's
  restore step re-applies the labels a replaced node had. Nothing else of the node is touched;
- restore node: the labels and taints a deleted node had, re-applied once it registered again (the labels
  that differ are merge-patched, the missing taints added to the ones it has).

Each kind refuses, before any confirmation, when there is nothing to do (already cordoned, the label
already has that value, …). Each outcome says how to undo it when it can (cordon ↔ uncordon, a drain's
cordon, a label's previous value; guided recovery's *Undo*), and a delete node returns the labels and
taints it read just before, for the restore. One :class:`kube.actions.api.KindExecutor` per kind in
:data:`EXECUTORS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from incident.action_kinds import DEFAULT_DRAIN_TIMEOUT, taint_text
from incident.actions import ActionRequest, Outcome
from incident.errors import ClusterError
from kube.actions.api import LISTED, ClusterApi, Guard, KindExecutor, Progress

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
    pods = api.call(api.say("pods_of_node", node=node), "list", api.core.list_pod_for_all_namespaces,
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
        raise ClusterError(api.say("already_cordoned", name=name), hint=api.say("already_cordoned_hint", name=name))
    if not cordon and not unschedulable:
        raise ClusterError(api.say("not_cordoned", name=name))
    api.patch_node(name, {"spec": {"unschedulable": cordon}}, dry_run=True)
    running = len(_pods_on(api, name).evict)
    if cordon:
        return api.say("cordon_dry_run", name=name, running=running)
    return api.say("uncordon_dry_run", name=name)


def _execute_schedulable(api: ClusterApi, request: ActionRequest, guard: Guard, *, cordon: bool) -> Outcome:
    guard()
    api.patch_node(request.target, {"spec": {"unschedulable": cordon}}, dry_run=False)
    inverse = {"kind": "uncordon" if cordon else "cordon", "target": request.target}
    return Outcome(True, api.say("cordoned" if cordon else "uncordoned", name=request.target), undo=inverse)


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
        raise api.error(error, api.say("pod", ref=_ref(pod)), "evict") from error
    except (Urllib3Error, OSError) as error:
        raise api.error(error, api.say("pod", ref=_ref(pod)), "evict") from error
    return "evicted"


def prepare_drain(api: ClusterApi, request: ActionRequest) -> str:
    name = request.target
    node = api.node(name)
    pods = _pods_on(api, name)
    already_cordoned = bool(node.spec and node.spec.unschedulable)
    if not already_cordoned:
        api.patch_node(name, {"spec": {"unschedulable": True}}, dry_run=True)
    grace = request.params.get("grace")
    blocked = [_ref(pod) for pod in pods.evict if _evict(api, pod, grace, dry_run=True) == "blocked"]
    return api.say("drain_dry_run", name=name, already_cordoned=already_cordoned, evict=[_ref(p) for p in pods.evict],
                   blocked=blocked, timeout=request.params.get("timeout") or DEFAULT_DRAIN_TIMEOUT,
                   unmanaged=pods.unmanaged, daemonset=len(pods.daemonset), mirror=len(pods.mirror),
                   terminating=len(pods.terminating), limit=LISTED)


def execute_drain(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    name = request.target
    timeout = float(request.params.get("timeout") or DEFAULT_DRAIN_TIMEOUT)
    deadline = time.monotonic() + timeout
    node = api.node(name)
    cordoned_here = not (node.spec and node.spec.unschedulable)
    if cordoned_here:
        guard()
        api.patch_node(name, {"spec": {"unschedulable": True}}, dry_run=False)
    pods = _pods_on(api, name)
    pending = {_ref(p): p for p in pods.evict}
    total, evicted, blocked = len(pending), [], {}  # type: ignore[var-annotated]
    progress(api.say("drain_started", name=name, total=total))
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
        progress(api.say("drain_retrying", evicted=len(evicted), total=total, pending=len(pending)))
        if time.monotonic() + EVICTION_RETRY_SECONDS > deadline:
            break
        api.sleep(EVICTION_RETRY_SECONDS)
    skipped = {"daemonset": len(pods.daemonset), "mirror": len(pods.mirror)}
    if pending:
        refused = [(ref, blocked.get(ref, 0)) for ref in sorted(pending)]
        return Outcome(False, api.say("drain_incomplete", name=name, timeout=int(timeout), evicted=len(evicted),
                                      total=total, refused=refused, **skipped))
    gone = _wait_gone(api, name, set(evicted), deadline, progress)
    text = api.say("drained", name=name, evicted=len(evicted), all_gone=gone, **skipped)
    if cordoned_here:  # the evicted pods are not brought back; the cordon is what can be taken back
        return Outcome(True, text, undo={"kind": "uncordon", "target": name})
    return Outcome(True, text, undo_note=api.say("no_undo_drain"))


def _wait_gone(api: ClusterApi, node: str, refs: set[str], deadline: float, progress: Progress) -> bool:
    """Wait (until the drain's deadline) for the evicted pods to leave the node."""
    while refs:
        pods = api.call(api.say("pods_of_node", node=node), "list", api.core.list_pod_for_all_namespaces,
                        field_selector=f"spec.nodeName={node}")
        left = {_ref(p) for p in pods.items} & refs
        if not left:
            return True
        if time.monotonic() >= deadline:
            return False
        progress(api.say("drain_waiting", left=len(left)))
        api.sleep(1.0)
    return True


# --- delete node ------------------------------------------------------------------------------------------


def prepare_delete_node(api: ClusterApi, request: ActionRequest) -> str:
    name = request.target
    api.node(name)
    pods = _pods_on(api, name)
    api.call(api.say("node", name=name), "delete", api.core.delete_node, name, dry_run="All")
    total = len(pods.evict) + len(pods.daemonset) + len(pods.mirror)
    return api.say("delete_node_dry_run", name=name, total=total, managed=len(pods.evict))


def execute_delete_node(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    node = api.node(request.target)  # its labels and taints, for the restore when it registers again
    before = {"labels": dict((node.metadata.labels if node.metadata else None) or {}),
              "taints": [{"key": t.key, "value": t.value or "", "effect": t.effect}
                         for t in (node.spec.taints if node.spec else None) or []]}
    guard()
    api.call(api.say("node", name=request.target), "delete", api.core.delete_node, request.target)
    return Outcome(True, api.say("node_deleted", name=request.target), undo_note=api.say("no_undo_delete_node"),
                   before=before)


# --- label / unlabel --------------------------------------------------------------------------------------


def _labels(api: ClusterApi, name: str) -> dict[str, str]:
    node = api.node(name)
    return dict((node.metadata.labels if node.metadata else None) or {})


def prepare_label(api: ClusterApi, request: ActionRequest) -> str:
    name, key, value = request.target, str(request.params["key"]), str(request.params.get("value", ""))
    current = _labels(api, name).get(key)
    if current == value:
        raise ClusterError(api.say("already_labelled", name=name, key=key, value=value))
    api.patch_node(name, {"metadata": {"labels": {key: value}}}, dry_run=True)
    return api.say("label_dry_run", name=name, key=key, before=current, value=value)


def execute_label(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    name, key, value = request.target, str(request.params["key"]), str(request.params.get("value", ""))
    before = _labels(api, name).get(key)
    guard()
    api.patch_node(name, {"metadata": {"labels": {key: value}}}, dry_run=False)
    return Outcome(True, api.say("labelled", name=name, key=key, value=value), undo=_label_inverse(name, key, before))


def _label_inverse(name: str, key: str, before: str | None) -> dict[str, Any]:
    """The request that puts a label back as it was: its previous value, or no label at all."""
    if before is None:
        return {"kind": "unlabel", "target": name, "params": {"key": key}}
    return {"kind": "label", "target": name, "params": {"key": key, "value": before}}


def prepare_unlabel(api: ClusterApi, request: ActionRequest) -> str:
    name, key = request.target, str(request.params["key"])
    labels = _labels(api, name)
    if key not in labels:
        raise ClusterError(api.say("no_such_label", name=name, key=key))
    api.patch_node(name, {"metadata": {"labels": {key: None}}}, dry_run=True)
    return api.say("unlabel_dry_run", name=name, key=key, value=labels[key])


def execute_unlabel(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    name, key = request.target, str(request.params["key"])
    before = _labels(api, name).get(key)
    guard()
    api.patch_node(name, {"metadata": {"labels": {key: None}}}, dry_run=False)
    return Outcome(True, api.say("unlabelled", name=name, key=key), undo=_label_inverse(name, key, before))


# --- restore node -----------------------------------------------------------------------------------------


def _restore_changes(api: ClusterApi, request: ActionRequest) -> tuple[dict[str, str], list[dict[str, str]], Any]:
    """The labels that differ and the taints missing on the node now (and the node)."""
    node = api.node(request.target)
    labels = dict((node.metadata.labels if node.metadata else None) or {})
    current = [{"key": t.key, "value": t.value or "", "effect": t.effect}
               for t in (node.spec.taints if node.spec else None) or []]
    wanted = dict(request.params.get("labels") or {})
    changed = {key: value for key, value in wanted.items() if labels.get(key) != value}
    missing = [t for t in request.params.get("taints") or [] if
               not any(c["key"] == t["key"] and c["effect"] == t["effect"] and c["value"] == t.get("value", "")
                       for c in current)]
    return changed, missing, current


def _restore_patch(changed: dict[str, str], missing: list[dict[str, str]],
                   current: list[dict[str, str]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if changed:
        body["metadata"] = {"labels": changed}
    if missing:  # a merge patch replaces the list: the taints it has, then the missing ones
        body["spec"] = {"taints": [{k: v for k, v in t.items() if v or k != "value"} for t in current + missing]}
    return body


def prepare_restore_node(api: ClusterApi, request: ActionRequest) -> str:
    changed, missing, current = _restore_changes(api, request)
    if not changed and not missing:
        raise ClusterError(api.say("restore_nothing", name=request.target))
    api.patch_node(request.target, _restore_patch(changed, missing, current), dry_run=True)
    return api.say("restore_dry_run", name=request.target, labels=sorted(changed.items()),
                   taints=[taint_text(t) for t in missing])


def execute_restore_node(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    changed, missing, current = _restore_changes(api, request)
    if changed or missing:
        guard()
        api.patch_node(request.target, _restore_patch(changed, missing, current), dry_run=False)
    return Outcome(True, api.say("restored_node", name=request.target, labels=len(changed), taints=len(missing)),
                   undo_note=api.say("no_undo_restore"))


EXECUTORS: tuple[KindExecutor, ...] = (
    KindExecutor("cordon", prepare_cordon, execute_cordon),
    KindExecutor("uncordon", prepare_uncordon, execute_uncordon),
    KindExecutor("drain", prepare_drain, execute_drain),
    KindExecutor("delete-node", prepare_delete_node, execute_delete_node),
    KindExecutor("label", prepare_label, execute_label),
    KindExecutor("unlabel", prepare_unlabel, execute_unlabel),
    KindExecutor("restore-node", prepare_restore_node, execute_restore_node),
)
