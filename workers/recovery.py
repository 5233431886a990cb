"""RQ entry points of node restore (guided recovery); the logic is :mod:`service.node_restore`."""

from __future__ import annotations

from typing import Any

from service import node_restore
from service.context import Context


def watch_node(incident_id: str, node: str, deadline: float) -> str:
    """Look once for a deleted node registering again (re-queued by itself until it does or the watch ends)."""
    ctx = Context.load()
    return node_restore.watch(ctx.settings, ctx.redis, ctx.slack, incident_id, node, deadline)


def check_rebalance(incident_id: str, node: str, channel: str, since: float) -> dict[str, Any]:
    """After a restore: the node Ready, schedulable, and the pods that landed on it; posted in the incident."""
    ctx = Context.load()
    return node_restore.check_rebalance(ctx.settings, ctx.slack, node, channel, since)
