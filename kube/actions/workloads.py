"""The workload kinds against the Kubernetes API: rollout restart, scale a Deployment, delete a pod.

- restart: ``kubectl.kubernetes.io/restartedAt`` on the pod template, as ``kubectl rollout restart``
  does (Deployments, DaemonSets, StatefulSets; a paused Deployment is refused: it would not roll out);
- scale: a Deployment's scale subresource (refused when it already has that many replicas);
- delete pod: says whether a controller brings it back.

Every target is ``namespace/name``; a missing namespace is named as such before the object is looked up.
One :class:`kube.actions.api.KindExecutor` per kind in :data:`EXECUTORS`.
"""

from __future__ import annotations

from typing import Any

from incident.actions import ActionRequest, Outcome
from incident.errors import ClusterError, NotPermitted
from incident.kube_syntax import split_target
from kube.actions.api import MERGE_PATCH, ClusterApi, Guard, KindExecutor, Progress, now_iso

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


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
    _restart_patch(api, workload, namespace, name, stamp, dry_run=False)
    return Outcome(True, api.say("restarted", workload=workload, namespace=namespace, name=name,
                                 annotation=RESTARTED_AT, stamp=stamp), undo_note=api.say("no_undo_restart"))


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
