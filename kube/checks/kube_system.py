"""kube-system: pods not Running or not ready, CrashLoopBackOff, climbing restarts, the control plane.

The kube-system pod LIST (``SYSTEM_PODS``) is the biggest pod LIST of the assessment (a pod per node for
every DaemonSet) and is read once for the three checks that need kube-system pods. It and the Lease LIST
are **consistent** reads: a crash loop or a stuck leader is evidence about now. Pods are folded into
counts and capped name lists as pages arrive.

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
from kube.checks import (
    CappedNames,
    CheckContext,
    CheckSpec,
    Finding,
    age_s,
    capped,
    meta,
    name_of,
    partial,
    pod_ready,
    workload_of,
)
from kube.client import ListRequest

SYSTEM_PODS = ListRequest(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/pods")
"""Every kube-system pod (one per node for each DaemonSet: 5,000+ at 5,000 nodes); read once, shared with
``pod_network`` (the CNI pods) and ``dns`` (the CoreDNS pods)."""
SYSTEM_LEASES = ListRequest(f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM_NAMESPACE}/leases")


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
    not_running, not_ready, not_ready_or_running, crashlooping, climbing, stuck = (CappedNames(limit) for _ in range(6))
    control_plane: dict[str, int] = {}
    control_plane_unhealthy: list[str] = []
    workloads: set[str] = set()
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
            control_plane[component] = control_plane.get(component, 0) + 1
            if not ready:
                control_plane_unhealthy.append(f"{component} ({name}: {phase}{', ' + reasons[0] if reasons else ''})")
        if phase != "Running":
            not_running.add(f"{name} ({phase})")
            not_ready_or_running.add(f"{name} ({phase})")
        elif not ready:
            not_ready.add(name)
            not_ready_or_running.add(name)
        if "CrashLoopBackOff" in reasons:
            crashlooping.add(f"{name} ({restarts} restarts)")
            workloads.add(workload_of(pod))
        elif any(reason in STUCK_WAITING_REASONS for reason in reasons):
            stuck.add(f"{name} ({reasons[0]})")
        if restarts >= thresholds.restart_climbing and recent:
            climbing.add(f"{name} ({restarts} restarts)")

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
        "pods": total, "not_running": not_running.facts(), "not_ready": not_ready_or_running.facts(),
        "crashlooping": crashlooping.facts(), "restarts_climbing": climbing.facts(),
        "stuck": stuck.facts(), "crashlooping_workloads": sorted(workloads),
        "control_plane_visible": sorted(control_plane), "control_plane_unhealthy": capped(sorted(control_plane_unhealthy), limit),
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
    pods = ctx.pages(SYSTEM_PODS).start()
    leases_stream = ctx.pages(SYSTEM_LEASES)
    leases = list(leases_stream.items())  # a handful: the leader-election Leases
    try:
        componentstatuses: list[Mapping[str, Any]] | None = list(ctx.kube.list_items("/api/v1/componentstatuses"))
    except ClusterError:
        componentstatuses = None  # removed or forbidden: it was only best-effort
    now = leases_stream.snapshot_time or ctx.kube.server_time or ctx.wall_clock()
    finding = summarize_kube_system(pods.items(), now, ctx.event_window, leases, componentstatuses, ctx.thresholds)
    return partial(finding, pods, leases_stream)


CHECKS = (CheckSpec("kube_system", "kube-system", check_kube_system, timeout_s=25.0, shared=(SYSTEM_PODS,)),)
