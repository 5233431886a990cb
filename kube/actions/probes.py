"""The probes kinds against the Kubernetes API: the runbook's emergency isolation and its way back.

- probes off: remove every container's readiness, liveness and startup probe from a Deployment's pod
  template, keeping the originals (as the API serves them) in the annotation :data:`SAVED_PROBES` on the
  Deployment itself — so the way back survives any bot restart and is visible to ``kubectl``;
- probes restore: put exactly those probes back, container by container, and drop the annotation.

Both are one JSON Patch whose ``test`` operations pin every container's name at its index, so a
Deployment changed since the dry-run is refused by the API server instead of patched in the wrong
place. Refused up front when there is nothing to do (no probes; already off; nothing saved).
"""

from __future__ import annotations

import json
from typing import Any

from incident.actions import ActionRequest, Outcome
from incident.errors import ClusterError
from incident.kube_syntax import split_target
from kube.actions.api import ClusterApi, Guard, KindExecutor, Progress

SAVED_PROBES = "incident-bot.k8s.io/removed-probes"
"""Annotation on the Deployment holding the probes ``probes off`` removed: ``{container: {probe kind: probe}}``."""
PROBE_KINDS = ("readinessProbe", "livenessProbe", "startupProbe")
JSON_PATCH = "application/json-patch+json"
_POINTER = SAVED_PROBES.replace("~", "~0").replace("/", "~1")


def _deployment(api: ClusterApi, request: ActionRequest) -> tuple[str, str, Any, dict[str, Any]]:
    namespace, name = split_target(request.target)
    if namespace is None:
        raise ClusterError(api.say("no_namespace", target=request.target))
    what = api.say("workload", workload="deployment", namespace=namespace, name=name)
    obj = api.call(what, "read", api.apps.read_namespaced_deployment, name, namespace)
    return namespace, name, obj, api.api.sanitize_for_serialization(obj)


def _containers(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return list((((raw.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])


def _saved(raw: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    text = ((raw.get("metadata") or {}).get("annotations") or {}).get(SAVED_PROBES)
    if not text:
        return None
    try:
        saved = json.loads(text)
    except ValueError:
        return None
    return saved if isinstance(saved, dict) else None


def _pin(index: int, container: dict[str, Any]) -> dict[str, Any]:
    return {"op": "test", "path": f"/spec/template/spec/containers/{index}/name", "value": container["name"]}


def _off_patch(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    ops: list[dict[str, Any]] = []
    saved: dict[str, dict[str, Any]] = {}
    for index, container in enumerate(_containers(raw)):
        probes = {kind: container[kind] for kind in PROBE_KINDS if container.get(kind)}
        if not probes:
            continue
        saved[container["name"]] = probes
        ops.append(_pin(index, container))
        ops += [{"op": "remove", "path": f"/spec/template/spec/containers/{index}/{kind}"} for kind in probes]
    if not (raw.get("metadata") or {}).get("annotations"):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    ops.append({"op": "add", "path": f"/metadata/annotations/{_POINTER}", "value": json.dumps(saved, sort_keys=True)})
    return ops, saved


def _restore_patch(api: ClusterApi, namespace: str, name: str, raw: dict[str, Any],
                   saved: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    index_of = {container["name"]: index for index, container in enumerate(_containers(raw))}
    ops: list[dict[str, Any]] = []
    for container, probes in saved.items():
        if container not in index_of:
            raise ClusterError(api.say("probes_changed", namespace=namespace, name=name, container=container))
        index = index_of[container]
        ops.append(_pin(index, _containers(raw)[index]))
        ops += [{"op": "add", "path": f"/spec/template/spec/containers/{index}/{kind}", "value": probe}
                for kind, probe in probes.items() if kind in PROBE_KINDS]
    ops.append({"op": "remove", "path": f"/metadata/annotations/{_POINTER}"})
    return ops


def _patch(api: ClusterApi, namespace: str, name: str, ops: list[dict[str, Any]], *, dry_run: bool) -> Any:
    extra = {"dry_run": "All"} if dry_run else {}
    return api.call(api.say("workload", workload="deployment", namespace=namespace, name=name), "patch",
                    api.apps.patch_namespaced_deployment, name, namespace, ops, _content_type=JSON_PATCH, **extra)


def _listed(saved: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [(container, list(probes)) for container, probes in saved.items()]


def prepare_probes_off(api: ClusterApi, request: ActionRequest) -> str:
    namespace, name, obj, raw = _deployment(api, request)
    if _saved(raw) is not None:
        raise ClusterError(api.say("probes_already_off", namespace=namespace, name=name),
                           hint=api.say("probes_already_off_hint", namespace=namespace, name=name))
    ops, saved = _off_patch(raw)
    if not saved:
        raise ClusterError(api.say("no_probes", namespace=namespace, name=name))
    _patch(api, namespace, name, ops, dry_run=True)
    return api.say("probes_off_dry_run", namespace=namespace, name=name, removed=_listed(saved),
                   annotation=SAVED_PROBES, replicas=obj.spec.replicas)


def execute_probes_off(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    namespace, name, _, raw = _deployment(api, request)
    if _saved(raw) is not None:
        raise ClusterError(api.say("probes_already_off", namespace=namespace, name=name))
    ops, saved = _off_patch(raw)
    if not saved:
        raise ClusterError(api.say("no_probes", namespace=namespace, name=name))
    guard()
    _patch(api, namespace, name, ops, dry_run=False)
    count = sum(len(probes) for probes in saved.values())
    return Outcome(True, api.say("probes_removed", namespace=namespace, name=name, count=count),
                   undo={"kind": "probes-restore", "target": request.target, "params": {"workload": "deployment"}})


def prepare_probes_restore(api: ClusterApi, request: ActionRequest) -> str:
    namespace, name, obj, raw = _deployment(api, request)
    saved = _saved(raw)
    if not saved:
        raise ClusterError(api.say("probes_not_removed", namespace=namespace, name=name))
    _patch(api, namespace, name, _restore_patch(api, namespace, name, raw, saved), dry_run=True)
    return api.say("probes_restore_dry_run", namespace=namespace, name=name, restored=_listed(saved),
                   annotation=SAVED_PROBES, replicas=obj.spec.replicas)


def execute_probes_restore(api: ClusterApi, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
    namespace, name, _, raw = _deployment(api, request)
    saved = _saved(raw)
    if not saved:
        raise ClusterError(api.say("probes_not_removed", namespace=namespace, name=name))
    ops = _restore_patch(api, namespace, name, raw, saved)
    guard()
    _patch(api, namespace, name, ops, dry_run=False)
    count = sum(len(probes) for probes in saved.values())
    return Outcome(True, api.say("probes_restored", namespace=namespace, name=name, count=count),
                   undo_note=api.say("no_undo_probes_restore"))


EXECUTORS: tuple[KindExecutor, ...] = (
    KindExecutor("probes-off", prepare_probes_off, execute_probes_off),
    KindExecutor("probes-restore", prepare_probes_restore, execute_probes_restore),
)
