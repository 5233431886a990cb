"""RQ entry points of risky actions; the logic (and why it is safe) is :mod:`service.actions`."""

from __future__ import annotations

from typing import Any

from service.actions import drain, expire, prepare, refresh
from service.context import Context
from service.runtime import DEFAULT_RUNTIME
from service.actions import kube_slack_runtime as kube_slack_runtime  # the runtime path of jobs queued before the move


def prepare_action(action_id: str, runtime_path: str = DEFAULT_RUNTIME) -> str:
    """Validate against the live cluster, dry-run, post the confirmation message."""
    return prepare(Context.load(runtime_path=runtime_path), action_id)


def drain_action_queue(cluster: str, runtime_path: str = DEFAULT_RUNTIME, watchdog: bool = False) -> dict[str, Any]:
    """Run the cluster's confirmed actions one at a time (or return at once if another drainer works)."""
    return drain(Context.load(runtime_path=runtime_path), cluster, watchdog=watchdog)


def expire_action(action_id: str, runtime_path: str = DEFAULT_RUNTIME) -> bool:
    """(Scheduled at the deadline) an unconfirmed request expires and its buttons go away."""
    return expire(Context.load(runtime_path=runtime_path), action_id)


def refresh_positions(cluster: str, runtime_path: str = DEFAULT_RUNTIME) -> int:
    """Rewrite each waiting action's message with its current position."""
    return refresh(Context.load(runtime_path=runtime_path), cluster)
