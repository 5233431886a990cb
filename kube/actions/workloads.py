"""The workload kinds against the Kubernetes API: rollout restart, scale a Deployment, delete a pod.

- restart: ``kubectl.kubernetes.io/restartedAt`` on the pod template, as ``kubectl rollout restart``
  does (Deployments, DaemonSets, StatefulSets; a paused Deployment is refused: it would not roll out),
  then, as ``kubectl rollout status`` would, up to :data:`ROLLOUT_WAIT_SECONDS` for the new pods to
  replace the old ones and the old ones to be gone: a restart is done when its pods are, so the
  re-assessment after a recovery step measures the restarted pods, not old ones still terminating;
- scale: a Deployment's scale subresource (refused when it already has that many replicas);
- delete pod: says whether a controller brings it back.

Every target is ``namespace/name``; a missing namespace is named as such before the object is looked up.
One :class:`kube.actions.api.KindExecutor` per kind in :data:`EXECUTORS`.
"""

from __future__ import annotations

import time
from typing import Any

from incident.actions import ActionRequest, Outcome
from incident.errors import ClusterError, NotPermitted
from incident.kube_syntax import split_target
from kube.actions.api import MERGE_PATCH, ClusterApi, Guard, KindExecutor, Progress, now_iso

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
ROLLOUT_WAIT_SECONDS = 60.0
"""How long a restart waits for its rollout to finish before it reports it as still rolling (the restart
itself has happened either way)."""
ROLLOUT_POLL_SECONDS = 0.5


def _namespaced(api: ClusterApi, request: ActionRequest) -> tuple[str, str]:
    """The target's namespace (checked to exist when we may read namespaces) and name."""
    namespace, name = split_target(request.target)
    if namespace is None:
        raise ClusterError(api.say("no_namespace", target=request.target))
    try:
        api.call(api.say("namespace", name=namespace), "read", api.core.read_namespace, namespace)
    except NotPermitted:
        pass  # may not read namespaces; the object read below still answers
    return namespace, name


# --- rollout restart --------------------------------------------------------------------------------------


def _workload(api: ClusterApi, workload: str, namespace: str, name: str) -> Any:
    readers = {"deployment": api.apps.read_namespaced_deployment, "daemonset": api.apps.read_namespaced_daemon_set,
               "statefulset": api.apps.read_namespaced_stateful_set}
    return api.call(api.say("workload", workload=workload, namespace=namespace, name=name), "read", readers[workload],
                    name, namespace)


def _restart_patch(api: ClusterApi, workload: str, namespace: str, name: str, stamp: str, *, dry_run: bool) -> Any:
    patchers = {"deployment": api.apps.patch_namespaced_deployment,
                "daemonset": api.apps.patch_namespaced_daemon_set,
                "statefulset": api.apps.patch_namespaced_stateful_set}
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    extra = {"dry_run": "All"} if dry_run else {}
    return api.call(api.say("workload", workload=workload, namespace=namespace, name=name), "patch",
                    patchers[workload], name, namespace, body, _content_type=MERGE_PATCH, **extra)


def prepare_restart(api: ClusterApi, request: ActionRequest) -> str:
    namespace, name = _namespaced(api, request)
    workload = str(request.params.get("workload", "deployment"))
    obj = _workload(api, workload, namespace, name)
    if workload == "deployment" and obj.spec.paused:
        raise ClusterError(api.say("paused", namespace=namespace, name=name), hint=api.say("paused_hint"))
    _restart_patch(api, workload, namespace, name, now_iso(), dry_run=True)
    previous = ((obj.spec.template.metadata and obj.spec.template.metadata.annotations) or {}).get(RESTARTED_AT)
    count = obj.status.desired_number_scheduled if workload == "daemonset" else obj.spec.replicas
    strategy = getattr(obj.spec, "strategy", None) or getattr(obj.spec, "update_strategy", None)
    how = strategy.type if strategy is not None and strategy.type else "RollingUpdate"
    return api.say("restart_dry_run", annotation=RESTARTED_AT, previous=previous, count=count, workload=workload,
                   namespace=namespace, name=name, strategy=how)


def execute_restart(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    namespace, name = split_target(request.target)
    assert namespace is not None
    workload = str(request.params.get("workload", "deployment"))
    stamp = now_iso()
    guard()
    patched = _restart_patch(api, workload, namespace, name, stamp, dry_run=False)
    started = time.monotonic()
    done, updated, wanted = _wait_rollout(api, workload, namespace, name, int(patched.metadata.generation or 0),
                                          started + ROLLOUT_WAIT_SECONDS, progress)
    rollout = api.say("rolled_out" if done else "still_rolling", updated=updated, wanted=wanted,
                      seconds=time.monotonic() - started)
    return Outcome(True, api.say("restarted", workload=workload, namespace=namespace, name=name,
                                 annotation=RESTARTED_AT, stamp=stamp) + " " + rollout,
                   undo_note=api.say("no_undo_restart"))


def rollout_state(workload: str, obj: Any, generation: int) -> tuple[bool, int, int]:
    """``(finished, updated and available pods, wanted pods)`` of a workload's rollout, as ``kubectl rollout
    status`` judges it: the controller saw the new template, every pod is updated and available, none is old."""
    status = obj.status
    if (status.observed_generation or 0) < generation:
        return False, 0, 0
    if workload == "daemonset":
        wanted = int(status.desired_number_scheduled or 0)
        updated = min(int(status.updated_number_scheduled or 0), int(status.number_available or 0))
        return updated >= wanted, updated, wanted
    wanted = int(obj.spec.replicas if obj.spec.replicas is not None else 1)
    if workload == "statefulset":
        updated = min(int(status.updated_replicas or 0), int(status.ready_replicas or 0))
        return updated >= wanted and status.current_revision == status.update_revision, updated, wanted
    updated = min(int(status.updated_replicas or 0), int(status.available_replicas or 0))
    return updated >= wanted and int(status.replicas or 0) <= wanted, updated, wanted


def _selector(obj: Any) -> str:
    """The workload's pod selector as a label selector string (matchLabels and matchExpressions)."""
    selector = obj.spec.selector
    parts = [f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())]
    for expression in selector.match_expressions or ():
        operator, values = expression.operator, ",".join(expression.values or ())
        parts.append({"In": f"{expression.key} in ({values})", "NotIn": f"{expression.key} notin ({values})",
                      "Exists": expression.key, "DoesNotExist": f"!{expression.key}"}[operator])
    return ",".join(parts)


def _terminating(api: ClusterApi, namespace: str, obj: Any) -> int:
    """The workload's pods still terminating (the old ones a rollout replaced, before their containers stop)."""
    try:
        pods = api.call(api.say("pods_of", namespace=namespace, name=obj.metadata.name), "list",
                        api.core.list_namespaced_pod, namespace, label_selector=_selector(obj))
    except (ClusterError, NotPermitted):
        return 0  # cannot tell (an identity that may restart but not list pods): the rollout's own status stands
    return sum(1 for pod in pods.items if pod.metadata.deletion_timestamp is not None)


def _wait_rollout(api: ClusterApi, workload: str, namespace: str, name: str, generation: int, deadline: float,
                  progress: Progress) -> tuple[bool, int, int]:
    """Wait (until ``deadline``) for the restart's rollout and for its old pods to be gone; its last state."""
    shown, updated, wanted = -1, 0, 0
    while True:
        try:
            obj = _workload(api, workload, namespace, name)
        except (ClusterError, NotPermitted):
            return False, updated, wanted  # the restart happened; how far it rolled cannot be read now
        done, updated, wanted = rollout_state(workload, obj, generation)
        done = done and not _terminating(api, namespace, obj)
        if done or time.monotonic() >= deadline:
            return done, updated, wanted
        if updated != shown:
            shown = updated
            progress(api.say("rolling", updated=updated, wanted=wanted))
        api.sleep(ROLLOUT_POLL_SECONDS)


# --- scale ------------------------------------------------------------------------------------------------


def prepare_scale(api: ClusterApi, request: ActionRequest) -> str:
    namespace, name = _namespaced(api, request)
    replicas = int(request.params["replicas"])
    what = api.say("workload", workload="deployment", namespace=namespace, name=name)
    scale = api.call(what, "read", api.apps.read_namespaced_deployment_scale, name, namespace)
    current = scale.spec.replicas if scale.spec and scale.spec.replicas is not None else 0
    if current == replicas:
        raise ClusterError(api.say("already_scaled", what=what, replicas=replicas))
    api.call(what, "scale", api.apps.patch_namespaced_deployment_scale, name, namespace,
             {"spec": {"replicas": replicas}}, dry_run="All", _content_type=MERGE_PATCH)
    return api.say("scale_dry_run", what=what, current=current, replicas=replicas)


def execute_scale(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    namespace, name = split_target(request.target)
    assert namespace is not None
    replicas = int(request.params["replicas"])
    what = api.say("workload", workload="deployment", namespace=namespace, name=name)
    before = api.call(what, "read", api.apps.read_namespaced_deployment_scale, name, namespace)
    guard()
    api.call(what, "scale", api.apps.patch_namespaced_deployment_scale, name, namespace,
             {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH)
    previous = before.spec.replicas if before.spec and before.spec.replicas is not None else 0
    return Outcome(True, api.say("scaled", what=what, before=before.spec.replicas, replicas=replicas),
                   undo={"kind": "scale", "target": request.target,
                         "params": {"workload": "deployment", "replicas": previous}})


# --- delete pod -------------------------------------------------------------------------------------------


def prepare_delete_pod(api: ClusterApi, request: ActionRequest) -> str:
    namespace, name = _namespaced(api, request)
    what = api.say("pod", ref=f"{namespace}/{name}")
    pod = api.call(what, "read", api.core.read_namespaced_pod, name, namespace)
    api.call(what, "delete", api.core.delete_namespaced_pod, name, namespace, dry_run="All")
    owner = next((ref for ref in pod.metadata.owner_references or [] if ref.controller), None)
    node = pod.spec.node_name if pod.spec else None
    return api.say("delete_pod_dry_run", namespace=namespace, name=name, node=node,
                   owner_kind=owner.kind if owner else None, owner_name=owner.name if owner else None)


def execute_delete_pod(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    namespace, name = split_target(request.target)
    assert namespace is not None
    guard()
    api.call(api.say("pod", ref=request.target), "delete", api.core.delete_namespaced_pod, name, namespace)
    return Outcome(True, api.say("pod_deleted", ref=request.target), undo_note=api.say("no_undo_delete_pod"))


EXECUTORS: tuple[KindExecutor, ...] = (
    KindExecutor("restart", prepare_restart, execute_restart),
    KindExecutor("scale", prepare_scale, execute_scale),
    KindExecutor("delete-pod", prepare_delete_pod, execute_delete_pod),
)
