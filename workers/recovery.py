"""RQ entry points of node restore (guided recovery); the logic is :mod:`service.node_restore`.

They run on the central workers with the settings of the deleted node's cluster (``cluster``, from the
node's record; ``None`` in jobs queued before clusters existed: the default cluster)."""

from __future__ import annotations

from typing import Any

from service import node_restore
from service.cluster_jobs import job_context
from service.context import Context


def watch_node(incident_id: str, node: str, deadline: float, cluster: str | None = None) -> str:
    """Look once for a deleted node registering again (re-queued by itself until it does or the watch ends)."""
    ctx = job_context(Context.load(), cluster)
    return node_restore.watch(ctx.settings, ctx.redis, ctx.slack, incident_id, node, deadline)


def check_rebalance(incident_id: str, node: str, channel: str, since: float,
                    cluster: str | None = None) -> dict[str, Any]:
    """After a restore: the node Ready, schedulable, and the pods that landed on it; posted in the incident."""
    ctx = job_context(Context.load(), cluster)
    return node_restore.check_rebalance(ctx.settings, ctx.slack, node, channel, since)
