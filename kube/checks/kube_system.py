"""kube-system: pods not Running or not ready, CrashLoopBackOff, climbing restarts, the control plane.

Control-plane pods (``component=etcd|kube-apiserver|kube-scheduler|kube-controller-manager``) are
reported when visible (self-managed clusters); leader-election Leases of the scheduler and the
controller-manager show whether they still work where their pods are not visible; ``componentstatuses``
is read best-effort (deprecated, probes fixed local ports, so it only adds weak evidence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from incident.errors import ClusterError
from incident.runbook import (
    CONTROL_PLANE_COMPONENTS,
    LEADER_LEASES,
    STUCK_WAITING_REASONS,
    SYSTEM_NAMESPACE,
    THRESHOLDS,
    Thresholds,
)
from kube.checks import CheckContext, CheckSpec, Finding, age_s, capped, meta, name_of, pod_ready, workload_of


def control_plane_component(pod: Mapping[str, Any]) -> str | None:
    """Which control-plane component a kube-system pod is (label ``component`` or static-pod name), if any."""
    labels = meta(pod).get("labels") or {}
    component = labels.get("component") or labels.get("k8s-app")
    if component in CONTROL_PLANE_COMPONENTS:
        return str(component)
    name = str(meta(pod).get("name", ""))
    return next((c for c in CONTROL_PLANE_COMPONENTS if name.startswith(c + "-")), None)


def _waiting_reasons(pod: Mapping[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    reasons = []
    for item in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (item.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reasons.append(str(waiting["reason"]))
    return reasons


def _restarts(pod: Mapping[str, Any], now: datetime, window: timedelta) -> tuple[int, bool]:
    """(total restarts, whether the last one happened within ``window``)."""
    total, recent = 0, False
    for item in (pod.get("status") or {}).get("containerStatuses") or []:
        total += int(item.get("restartCount") or 0)
        finished = ((item.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        age = age_s(finished, now)
        if age is not None and age <= window.total_seconds():
            recent = True
    return total, recent


def summarize_kube_system(pods: Iterable[Mapping[str, Any]], now: datetime, window: timedelta,
                          leases: Iterable[Mapping[str, Any]] = (), componentstatuses: Iterable[Mapping[str, Any]] | None = None,
                          thresholds: Thresholds = THRESHOLDS) -> Finding:
    """Judge kube-system from its pods, its Leases and (optionally) ``componentstatuses``."""
    limit = thresholds.top_offenders * 2
    total = 0
    not_running: list[str] = []
    not_ready: list[str] = []
    crashlooping: list[str] = []
    climbing: list[str] = []
    stuck: list[str] = []
    control_plane: dict[str, list[str]] = {}
    control_plane_unhealthy: list[str] = []
    workloads: dict[str, list[str]] = {}
    for pod in pods:
        total += 1
        name = name_of(pod, namespaced=False)
        phase = (pod.get("status") or {}).get("phase", "Unknown")
        if phase == "Succeeded":
            continue
        reasons = _waiting_reasons(pod)
        restarts, recent = _restarts(pod, now, window)
        ready = phase == "Running" and pod_ready(pod)
        component = control_plane_component(pod)
        if component:
            control_plane.setdefault(component, []).append(name)
            if not ready:
                control_plane_unhealthy.append(f"{component} ({name}: {phase}{', ' + reasons[0] if reasons else ''})")
        if phase != "Running":
            not_running.append(f"{name} ({phase})")
        elif not ready:
            not_ready.append(name)
        if "CrashLoopBackOff" in reasons:
            crashlooping.append(f"{name} ({restarts} restarts)")
            workloads.setdefault(workload_of(pod), []).append(name)
        elif any(reason in STUCK_WAITING_REASONS for reason in reasons):
            stuck.append(f"{name} ({reasons[0]})")
        if restarts >= thresholds.restart_climbing and recent:
            climbing.append(f"{name} ({restarts} restarts)")

    stale_leaders = []
    for lease in leases:
        lease_name = name_of(lease, namespaced=False)
        if lease_name not in LEADER_LEASES:
            continue
        spec = lease.get("spec") or {}
        age = age_s(spec.get("renewTime"), now)
        duration = float(spec.get("leaseDurationSeconds") or 15)
        if age is None or age > max(duration, thresholds.lease_stale_s):
            stale_leaders.append(f"{lease_name} ({'never renewed' if age is None else f'{age:.0f} s ago'})")

    cs_unhealthy = []
    if componentstatuses is not None:
        for item in componentstatuses:
            healthy = next((c for c in item.get("conditions") or [] if c.get("type") == "Healthy"), {})
            if healthy.get("status") != "True":
                cs_unhealthy.append(f"{name_of(item, namespaced=False)}: {str(healthy.get('message', 'unhealthy'))[:120]}")

    facts = {
        "pods": total, "not_running": capped(sorted(not_running), limit), "not_ready": capped(sorted(not_ready + not_running), limit),
        "crashlooping": capped(sorted(crashlooping), limit), "restarts_climbing": capped(sorted(climbing), limit),
        "stuck": capped(sorted(stuck), limit), "crashlooping_workloads": sorted(workloads),
        "control_plane_visible": sorted(control_plane), "control_plane_unhealthy": sorted(control_plane_unhealthy),
        "stale_leader_leases": sorted(stale_leaders), "componentstatus_unhealthy": sorted(cs_unhealthy),
        "componentstatuses_read": componentstatuses is not None,
    }
    parts = [f"{total} pod(s)"]
    if crashlooping:
        parts.append(f"{len(crashlooping)} in CrashLoopBackOff")
    if not_running or not_ready:
        parts.append(f"{len(not_running) + len(not_ready)} not running/ready")
    if climbing:
        parts.append(f"{len(climbing)} with climbing restarts")
    parts.append(f"control plane pods: {', '.join(sorted(control_plane))}" if control_plane
                 else "control-plane pods not visible (managed control plane?)")
    if stale_leaders:
        parts.append("stale leader lease(s): " + ", ".join(stale_leaders))
    if cs_unhealthy:
        parts.append(f"componentstatuses (deprecated, best-effort) unhealthy: {len(cs_unhealthy)}")
    summary = "; ".join(parts)
    if control_plane_unhealthy or stale_leaders or crashlooping:
        return Finding("fail", summary, facts)
    if not_running or not_ready or climbing or stuck:
        return Finding("warn", summary, facts)
    return Finding("ok", summary, facts)


def check_kube_system(ctx: CheckContext) -> Finding:
    pods = ctx.kube.list_items(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/pods")
    leases = list(ctx.kube.list_items(f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM_NAMESPACE}/leases"))
    try:
        componentstatuses: list[Mapping[str, Any]] | None = list(ctx.kube.list_items("/api/v1/componentstatuses"))
    except ClusterError:
        componentstatuses = None  # removed or forbidden: it was only best-effort
    now = ctx.kube.server_time or ctx.wall_clock()
    return summarize_kube_system(pods, now, ctx.event_window, leases, componentstatuses, ctx.thresholds)


CHECKS = (CheckSpec("kube_system", "kube-system", check_kube_system, timeout_s=25.0),)
