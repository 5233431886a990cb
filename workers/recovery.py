"""RQ entry points of node restore (guided recovery); the logic is :mod:`service.node_restore`.

They run where the deleted node's cluster is reached (its queue: the central workers, or an agent cluster's
agent) with that cluster's settings (``cluster``, from the node's record; ``None`` in jobs queued before clusters
existed: the default cluster), and tell the incident through the job's notifier (Slack, or an agent's outbox)."""

from __future__ import annotations

from typing import Any

from service import node_restore
from service.cluster_jobs import job_context
from service.context import Context


def watch_node(incident_id: str, node: str, deadline: float, cluster: str | None = None) -> str:
    """Look once for a deleted node registering again (re-queued by itself until it does or the watch ends)."""
    ctx = job_context(Context.load(), cluster)
    return node_restore.watch(ctx.settings, ctx.redis, ctx.runtime.notifier, incident_id, node, deadline)


def check_rebalance(incident_id: str, node: str, channel: str, since: float,
                    cluster: str | None = None) -> dict[str, Any]:
    """After a restore: the node Ready, schedulable, and the pods that landed on it; posted in the incident."""
    ctx = job_context(Context.load(), cluster)
    return node_restore.check_rebalance(ctx.settings, ctx.runtime.notifier, node, channel, since)
