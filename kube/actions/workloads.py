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
        raise ClusterError(f"`{request.target}` names no namespace.")
    try:
        api.call(f"Namespace `{namespace}`", "read", api.core.read_namespace, namespace)
    except NotPermitted:
        pass  # may not read namespaces; the object read below still answers
    return namespace, name


# --- rollout restart --------------------------------------------------------------------------------------


def _workload(api: ClusterApi, workload: str, namespace: str, name: str) -> Any:
    readers = {"deployment": api.apps.read_namespaced_deployment, "daemonset": api.apps.read_namespaced_daemon_set,
               "statefulset": api.apps.read_namespaced_stateful_set}
    return api.call(f"{workload.capitalize()} `{namespace}/{name}`", "read", readers[workload], name, namespace)


def _restart_patch(api: ClusterApi, workload: str, namespace: str, name: str, stamp: str, *, dry_run: bool) -> Any:
    patchers = {"deployment": api.apps.patch_namespaced_deployment,
                "daemonset": api.apps.patch_namespaced_daemon_set,
                "statefulset": api.apps.patch_namespaced_stateful_set}
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    extra = {"dry_run": "All"} if dry_run else {}
    return api.call(f"{workload.capitalize()} `{namespace}/{name}`", "patch", patchers[workload], name, namespace,
                    body, _content_type=MERGE_PATCH, **extra)


def prepare_restart(api: ClusterApi, request: ActionRequest) -> str:
    namespace, name = _namespaced(api, request)
    workload = str(request.params.get("workload", "deployment"))
    obj = _workload(api, workload, namespace, name)
    if workload == "deployment" and obj.spec.paused:
        raise ClusterError(f"Deployment `{namespace}/{name}` is paused; a restart would not roll out.",
                           hint="Resume it first (kubectl rollout resume).")
    _restart_patch(api, workload, namespace, name, now_iso(), dry_run=True)
    previous = ((obj.spec.template.metadata and obj.spec.template.metadata.annotations) or {}).get(RESTARTED_AT)
    count = obj.status.desired_number_scheduled if workload == "daemonset" else obj.spec.replicas
    strategy = getattr(obj.spec, "strategy", None) or getattr(obj.spec, "update_strategy", None)
    how = strategy.type if strategy is not None and strategy.type else "RollingUpdate"
    return (f"• pod template annotation `{RESTARTED_AT}`: {previous or 'unset'} → now\n"
            f"• all {count} pod(s) of {workload} `{namespace}/{name}` are replaced ({how})")


def execute_restart(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    namespace, name = split_target(request.target)
    assert namespace is not None
    workload = str(request.params.get("workload", "deployment"))
    stamp = now_iso()
    guard()
    _restart_patch(api, workload, namespace, name, stamp, dry_run=False)
    return Outcome(True, f"Rollout restart of {workload} `{namespace}/{name}` started (`{RESTARTED_AT}={stamp}`).")


# --- scale ------------------------------------------------------------------------------------------------


def prepare_scale(api: ClusterApi, request: ActionRequest) -> str:
    namespace, name = _namespaced(api, request)
    replicas = int(request.params["replicas"])
    what = f"Deployment `{namespace}/{name}`"
    scale = api.call(what, "read", api.apps.read_namespaced_deployment_scale, name, namespace)
    current = scale.spec.replicas if scale.spec and scale.spec.replicas is not None else 0
    if current == replicas:
        raise ClusterError(f"{what} already has {replicas} replica(s); nothing to do.")
    api.call(what, "scale", api.apps.patch_namespaced_deployment_scale, name, namespace,
             {"spec": {"replicas": replicas}}, dry_run="All", _content_type=MERGE_PATCH)
    effect = "all its pods stop" if replicas == 0 else (
        f"{replicas - current} pod(s) added" if replicas > current else f"{current - replicas} pod(s) removed")
    return f"• {what}: replicas {current} → {replicas} ({effect})"


def execute_scale(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    namespace, name = split_target(request.target)
    assert namespace is not None
    replicas = int(request.params["replicas"])
    what = f"Deployment `{namespace}/{name}`"
    before = api.call(what, "read", api.apps.read_namespaced_deployment_scale, name, namespace)
    guard()
    api.call(what, "scale", api.apps.patch_namespaced_deployment_scale, name, namespace,
             {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH)
    return Outcome(True, f"{what} scaled {before.spec.replicas} → {replicas} replica(s).")


# --- delete pod -------------------------------------------------------------------------------------------


def prepare_delete_pod(api: ClusterApi, request: ActionRequest) -> str:
    namespace, name = _namespaced(api, request)
    what = f"Pod `{namespace}/{name}`"
    pod = api.call(what, "read", api.core.read_namespaced_pod, name, namespace)
    api.call(what, "delete", api.core.delete_namespaced_pod, name, namespace, dry_run="All")
    owner = next((ref for ref in pod.metadata.owner_references or [] if ref.controller), None)
    fate = (f"its {owner.kind} `{owner.name}` creates a replacement" if owner
            else ":warning: no controller owns it: it will *not* come back")
    node = pod.spec.node_name if pod.spec else None
    return f"• pod `{namespace}/{name}`" + (f" on node `{node}`" if node else "") + f" is deleted; {fate}"


def execute_delete_pod(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    namespace, name = split_target(request.target)
    assert namespace is not None
    guard()
    api.call(f"Pod `{request.target}`", "delete", api.core.delete_namespaced_pod, name, namespace)
    return Outcome(True, f"Pod `{request.target}` was deleted.")


EXECUTORS: tuple[KindExecutor, ...] = (
    KindExecutor("restart", prepare_restart, execute_restart),
    KindExecutor("scale", prepare_scale, execute_scale),
    KindExecutor("delete-pod", prepare_delete_pod, execute_delete_pod),
)
