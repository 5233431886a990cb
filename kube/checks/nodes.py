"""Nodes and what blocks draining them.

``nodes`` counts Ready / NotReady / Unknown nodes, pressure conditions (Memory/Disk/PID pressure,
NetworkUnavailable), cordoned nodes, and stale heartbeats from the Leases in ``kube-node-lease``, ages
measured on the apiserver's clock at the Lease LIST's first page (every page of a LIST shows the
cluster as of that moment, so measuring later pages against a later clock would age them by the time
the paging took). Both LISTs are **consistent** reads: heartbeat ages are the evidence, and a lagging
watch cache would show old renewals as stale heartbeats. The two LISTs run side by side; what is kept
per node is its name and Lease age (a few MB at 5,000 nodes), everything else is folded into counts.
``disruption_budgets`` lists PodDisruptionBudgets that currently allow no disruption (a drain would stall
on them), from a **cached** read (a budget a second old gives the same drain advice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from incident.runbook import NODE_LEASE_NAMESPACE, THRESHOLDS, Thresholds
from kube.checks import CappedNames, CheckContext, CheckSpec, Finding, age_s, capped, condition, name_of, partial
from kube.client import CACHED, ListRequest

PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
NODE_LEASES = ListRequest(f"/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases")
NODES = ListRequest("/api/v1/nodes")
PDBS = ListRequest("/apis/policy/v1/poddisruptionbudgets", freshness=CACHED)


def lease_ages(leases: Iterable[Mapping[str, Any]], now: Callable[[], datetime]) -> dict[str, float | None]:
    """Node name → seconds since its Lease was renewed (``None`` if never), on the clock ``now()``."""
    return {name_of(lease, namespaced=False): age_s((lease.get("spec") or {}).get("renewTime"), now()) for lease in leases}


def summarize_nodes(nodes: Iterable[Mapping[str, Any]], leases: Mapping[str, float | None],
                    thresholds: Thresholds = THRESHOLDS, *, leases_complete: bool = True) -> Finding:
    """Count node states from node JSON (may be a generator over pages) and the node Lease ages.

    When the Lease LIST did not finish (``leases_complete=False``), a node without a Lease in the part
    read is not counted as missing one: it may be in the part not read.
    """
    limit = thresholds.top_offenders * 2
    total = ready = 0
    not_ready, unknown, pressure, cordoned, stale, missing = (CappedNames(limit) for _ in range(6))
    for node in nodes:
        name = name_of(node, namespaced=False)
        total += 1
        state = (condition(node, "Ready") or {}).get("status", "Unknown")
        if state == "True":
            ready += 1
        elif state == "False":
            not_ready.add(name)
        else:
            unknown.add(name)
        for kind in PRESSURE_CONDITIONS:
            if (condition(node, kind) or {}).get("status") == "True":
                pressure.add(f"{name} {kind}")
        if (node.get("spec") or {}).get("unschedulable"):
            cordoned.add(name)
        if name not in leases:
            if leases_complete:
                missing.add(name)
            continue
        age = leases[name]
        if age is None or age > thresholds.lease_stale_s:
            stale.add(f"{name} ({'never renewed' if age is None else f'{age:.0f} s ago'})")
    facts = {
        "total": total, "ready": ready, "not_ready": len(not_ready), "unknown": len(unknown),
        "not_ready_names": not_ready.facts(), "unknown_names": unknown.facts(),
        "pressure": pressure.facts(), "cordoned": len(cordoned), "cordoned_names": cordoned.facts(),
        "stale_leases": len(stale), "stale_lease_names": stale.facts(),
        "missing_leases": len(missing), "missing_lease_names": missing.facts(),
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
    leases = ctx.pages(NODE_LEASES)
    nodes = ctx.pages(NODES).start()  # its first pages arrive while the Leases are read
    ages = lease_ages(leases.items(), lambda: leases.snapshot_time or ctx.wall_clock())
    finding = summarize_nodes(nodes.items(), ages, ctx.thresholds, leases_complete=leases.complete)
    return partial(finding, leases, nodes)


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
    pdbs = ctx.pages(PDBS)
    return partial(summarize_pdbs(pdbs.items(), ctx.thresholds), pdbs)


CHECKS = (
    CheckSpec("nodes", "Nodes", check_nodes, timeout_s=30.0),
    CheckSpec("disruption_budgets", "Disruption budgets", check_disruption_budgets, timeout_s=20.0),
)
