"""Nodes and what blocks draining them.

``nodes`` counts Ready / NotReady / Unknown nodes, pressure conditions (Memory/Disk/PID pressure,
NetworkUnavailable), cordoned nodes, and stale heartbeats from the Leases in ``kube-node-lease``, ages
measured on the apiserver's clock. ``disruption_budgets`` lists PodDisruptionBudgets that currently
allow no disruption (a drain would stall on them). Both LIST page by page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from incident.runbook import NODE_LEASE_NAMESPACE, THRESHOLDS, Thresholds
from kube.checks import CheckContext, CheckSpec, Finding, age_s, capped, condition, name_of

PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def lease_ages(leases: Iterable[Mapping[str, Any]], now: Callable[[], datetime]) -> dict[str, float | None]:
    """Node name → seconds since its Lease was renewed (``None`` if never), on the clock ``now()``."""
    return {name_of(lease, namespaced=False): age_s((lease.get("spec") or {}).get("renewTime"), now()) for lease in leases}


def summarize_nodes(nodes: Iterable[Mapping[str, Any]], leases: Mapping[str, float | None],
                    thresholds: Thresholds = THRESHOLDS) -> Finding:
    """Count node states from node JSON (may be a generator over pages) and the node Lease ages."""
    limit = thresholds.top_offenders * 2
    total = ready = 0
    not_ready: list[str] = []
    unknown: list[str] = []
    pressure: list[str] = []
    cordoned: list[str] = []
    stale: list[str] = []
    missing: list[str] = []
    for node in nodes:
        name = name_of(node, namespaced=False)
        total += 1
        state = (condition(node, "Ready") or {}).get("status", "Unknown")
        if state == "True":
            ready += 1
        elif state == "False":
            not_ready.append(name)
        else:
            unknown.append(name)
        for kind in PRESSURE_CONDITIONS:
            if (condition(node, kind) or {}).get("status") == "True":
                pressure.append(f"{name} {kind}")
        if (node.get("spec") or {}).get("unschedulable"):
            cordoned.append(name)
        if name not in leases:
            missing.append(name)
            continue
        age = leases[name]
        if age is None or age > thresholds.lease_stale_s:
            stale.append(f"{name} ({'never renewed' if age is None else f'{age:.0f} s ago'})")
    facts = {
        "total": total, "ready": ready, "not_ready": len(not_ready), "unknown": len(unknown),
        "not_ready_names": capped(sorted(not_ready), limit), "unknown_names": capped(sorted(unknown), limit),
        "pressure": capped(sorted(pressure), limit), "cordoned": len(cordoned), "cordoned_names": capped(sorted(cordoned), limit),
        "stale_leases": len(stale), "stale_lease_names": capped(sorted(stale), limit),
        "missing_leases": len(missing), "missing_lease_names": capped(sorted(missing), limit),
    }
    counts = f"{ready}/{total} Ready, {len(not_ready)} NotReady, {len(unknown)} Unknown"
    if total == 0:
        return Finding("fail", "no nodes registered", facts)
    if not_ready or unknown or stale:
        extra = f"; {len(stale)} stale heartbeat(s)" if stale else ""
        return Finding("fail", counts + extra, facts)
    notes = []
    if pressure:
        notes.append(f"{len(pressure)} pressure condition(s)")
    if cordoned:
        notes.append(f"{len(cordoned)} cordoned")
    if notes:
        return Finding("warn", f"{counts}; " + ", ".join(notes), facts)
    return Finding("ok", counts, facts)


def check_nodes(ctx: CheckContext) -> Finding:
    # Lease ages are measured on the apiserver's clock (Date header of the page that carried them).
    leases = ctx.kube.list_items(f"/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases")
    ages = lease_ages(leases, lambda: ctx.kube.server_time or ctx.wall_clock())
    return summarize_nodes(ctx.kube.list_items("/api/v1/nodes"), ages, ctx.thresholds)


def summarize_pdbs(pdbs: Iterable[Mapping[str, Any]], thresholds: Thresholds = THRESHOLDS) -> Finding:
    """PodDisruptionBudgets that allow no disruption right now (and expect pods)."""
    total = 0
    blocking: list[str] = []
    for pdb in pdbs:
        total += 1
        status = pdb.get("status") or {}
        if int(status.get("expectedPods") or 0) > 0 and int(status.get("disruptionsAllowed") or 0) == 0:
            healthy, desired = status.get("currentHealthy", "?"), status.get("desiredHealthy", "?")
            blocking.append(f"{name_of(pdb)} ({healthy}/{desired} healthy)")
    facts = {"total": total, "blocking": capped(sorted(blocking), thresholds.top_offenders * 2), "blocking_count": len(blocking)}
    if blocking:
        return Finding("warn", f"{len(blocking)} of {total} PodDisruptionBudget(s) allow no disruption; draining their "
                               f"nodes will stall: " + ", ".join(blocking[: thresholds.top_offenders]), facts)
    return Finding("ok", f"{total} PodDisruptionBudget(s), none blocking evictions", facts)


def check_disruption_budgets(ctx: CheckContext) -> Finding:
    return summarize_pdbs(ctx.kube.list_items("/apis/policy/v1/poddisruptionbudgets"), ctx.thresholds)


CHECKS = (
    CheckSpec("nodes", "Nodes", check_nodes, timeout_s=30.0),
    CheckSpec("disruption_budgets", "Disruption budgets", check_disruption_budgets, timeout_s=20.0),
)
