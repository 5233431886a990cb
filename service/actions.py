"""Risky actions (service layer): prepare (validate + dry-run), drain the per-cluster queue, expire, positions.

The RQ entry points are in :mod:`workers.actions`; their paths and queue options in :mod:`service.jobs`.

``prepare_action`` runs on the ``assess`` queue (it only reads the cluster and dry-runs) and posts
the confirmation message. On Confirm the bot pushes the id onto the cluster's FIFO and enqueues
``drain_action_queue`` on the ``actions`` queue (the cluster's own, ``actions@<cluster>``, in a registry of many
clusters: :func:`service.jobs.get_queue`). Any number of drainers may run at once in any
number of workers; only the one that takes the per-cluster lock works, the others return at once:

    take the lock (new fence) ── held by someone else → make sure a watchdog is scheduled, return
    loop: head = first id in the FIFO
          head ``running`` under an older fence → its worker died: ``outcome_unknown``, say so, pop
          else mark it ``running`` under our fence, run it (the lease renewed by a thread, the lock
          checked before every mutating call), post the outcome, audit it, pop
    release; if the FIFO is not empty (a push raced our last look), start over.

When an action starts, a watchdog drain is scheduled ``2 × lease`` later (``enqueue_in``, run by a
worker started with the scheduler), so a SIGKILLed worker's queue resumes once its lease expired.
Mutating jobs are never retried by RQ.

What actually touches the cluster and Slack is the :class:`service.runtime.ActionRuntime` of the
one :class:`service.context.Context` (``ctx.runtime``, built on first use from ``ctx.runtime_path``, a
factory named by import path that travels with every job), so the queue machinery can be driven with a
stand-in executor in tests; the default is :func:`kube_slack_runtime`, Kubernetes + Slack.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from slack_sdk.models.blocks import Block

from chat import action_blocks
from persistence.action_lock import ActionLock, LeaseKeeper, LeaseLost
from persistence.action_queue import ActionQueue
from persistence.action_store import ActionStore, latest_assessment_guard
from incident.actions import ActionRequest, ActionStatus
from incident.errors import IncidentBotError
from incident.settings import Settings
from persistence.connection import get_keys, get_redis
from service import jobs, node_restore, recovery_record
from service.context import Context
from service.outbox import real_ts
from service.runtime import DEFAULT_RUNTIME, ActionRuntime, LazyExecutor

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 3.0
"""At most one progress reply per this many seconds per action (Slack rate limits)."""

def kube_slack_runtime(settings: Settings) -> ActionRuntime:
    """The production runtime: ``kube.actions`` (as the bot, or as the requester: ``kube.impersonation``), Slack."""
    from chat.client import SlackClient
    from kube.impersonation import action_executor

    return ActionRuntime(executor=LazyExecutor(lambda: action_executor(settings)), notifier=SlackClient(settings))


def action_store(ctx: Context) -> ActionStore:
    """The risky actions' store of ``ctx``."""
    return ActionStore(ctx.redis, ctx.keys, ctx.clock)


def action_queue(ctx: Context, cluster: str) -> ActionQueue:
    """``cluster``'s FIFO of confirmed actions."""
    return ActionQueue(ctx.redis, cluster, ctx.keys, ctx.clock)


# --- telling people; a Slack failure never stops the serialized path ----------------------------


def _post(ctx: Context, channel: str, text: str, blocks: list[Block] | None = None,
          thread_ts: str | None = None) -> str | None:
    try:
        return ctx.runtime.notifier.post_message(channel, text, blocks, thread_ts=thread_ts)
    except Exception:  # noqa: BLE001 - the action's state is in Redis; the message is best effort
        log.exception("could not post to %s: %s", channel, text[:200])
        return None


def _update(ctx: Context, request: ActionRequest, text: str, blocks: list[Block]) -> None:
    if not request.message_ts:
        return
    # An agent's message has a placeholder ts until the bot's drainer sent it (service.cluster_jobs).
    ts = real_ts(ctx.redis, ctx.keys, request.message_ts) or request.message_ts
    try:
        ctx.runtime.notifier.update_message(request.channel_id, ts, text, blocks)
    except Exception:  # noqa: BLE001
        log.exception("could not update the message of action %s", request.id)


def show_state(ctx: Context, request: ActionRequest, position: int | None = None) -> None:
    """Rewrite the action's message with its current state (and its place in the queue)."""
    _update(ctx, request, *action_blocks.state(request, ctx.templates, position))


# --- enqueueing (used by the bot and by the drainer itself) ---------------------------------------------


DRAIN_PENDING_SECONDS = 300
"""A queued drain job that never started (its worker died) stops deduplicating after this long."""


def enqueue_drain(settings: Settings, cluster: str, runtime_path: str = DEFAULT_RUNTIME, *,
                  delay: timedelta | None = None, watchdog: bool = False) -> bool:
    """Queue a drain of ``cluster``'s FIFO on the ``actions`` queue (never retried); false if one is already waiting.

    Call it *after* pushing onto the FIFO. A drain job clears the pending marker before it looks at
    the FIFO, so a job that has not started yet is bound to see every push made before this call:
    a burst of confirms costs one or two jobs, not one each (which would starve the other queues).
    """
    description = f"drain risky actions of {cluster}"
    if delay is not None:
        jobs.enqueue_in(settings, jobs.ACTION_DRAIN, delay, cluster, runtime_path, watchdog=watchdog,
                        description=description, on_cluster=cluster)
        return True
    pending = get_keys(settings).action_drain_pending(cluster)
    if not get_redis(settings).set(pending, "1", nx=True, ex=DRAIN_PENDING_SECONDS):
        return False
    jobs.enqueue(settings, jobs.ACTION_DRAIN, cluster, runtime_path, watchdog=watchdog, description=description,
                 on_cluster=cluster)
    return True


def enqueue_prepare(settings: Settings, action_id: str, runtime_path: str = DEFAULT_RUNTIME, *,
                    cluster: str | None = None, job_id: str | None = None) -> None:
    """Queue the validation + dry-run of a new request (read-only: one retry after a crash is safe) on its cluster's queue.

    ``job_id``: a stable id (``service.inbox.job_once``), so a replayed request does not queue it twice."""
    jobs.enqueue(settings, jobs.ACTION_PREPARE, action_id, runtime_path, on_cluster=cluster, job_id=job_id)


def _ensure_watchdog(ctx: Context, cluster: str) -> None:
    """Schedule one delayed drain ``2 × lease`` from now unless one is already pending."""
    lease = ctx.settings.action_lease_seconds
    if ctx.redis.set(ctx.keys.action_watchdog(cluster), "1", nx=True, px=int(2 * lease * 1000)):
        enqueue_drain(ctx.settings, cluster, ctx.runtime_path, delay=timedelta(seconds=2 * lease), watchdog=True)


def request_positions_refresh(settings: Settings, redis: Redis, cluster: str,
                              runtime_path: str = DEFAULT_RUNTIME) -> None:
    """Update the waiting actions' messages with their new positions, off the serialized path (deduplicated)."""
    try:
        if redis.set(get_keys(settings).action_positions_pending(cluster), "1", nx=True, ex=60):
            jobs.enqueue(settings, jobs.ACTION_POSITIONS, cluster, runtime_path, redis=redis)
    except RedisError:
        log.exception("could not queue the position refresh of %s", cluster)


# --- the work -------------------------------------------------------------------------------------------


def expire(ctx: Context, action_id: str) -> bool:
    """An unconfirmed request past its deadline expires and its buttons go away (Slack and Redis only)."""
    if not action_store(ctx).expire(action_id):
        return False
    show_state(ctx, action_store(ctx).get(action_id))
    return True


def refresh(ctx: Context, cluster: str) -> int:
    """Rewrite each waiting action's message with its current position; returns how many."""
    ctx.redis.delete(ctx.keys.action_positions_pending(cluster))
    updated = 0
    for position, action_id in enumerate(action_queue(ctx, cluster).ids(), start=1):
        request = action_store(ctx).find(action_id)
        if request is not None and request.status == ActionStatus.QUEUED:
            show_state(ctx, request, position)
            updated += 1
    return updated



def prepare(ctx: Context, action_id: str) -> str:
    """Validation + dry-run → ``awaiting_confirmation`` and the confirmation message (or ``rejected``)."""
    store = action_store(ctx)
    request = store.get(action_id)
    if request.status != ActionStatus.PREPARING:
        return request.status.value
    try:
        summary = ctx.runtime.executor.prepare(request)
    except IncidentBotError as error:
        reason = error.user_text()
        if store.reject(action_id, reason):
            text, blocks = action_blocks.rejected(request, reason, ctx.templates)
            try:
                ctx.runtime.notifier.post_ephemeral(request.channel_id, request.requested_by, text, blocks)
            except Exception:  # noqa: BLE001
                log.exception("could not tell %s that action %s was rejected", request.requested_by, action_id)
        return ActionStatus.REJECTED.value
    guard = latest_assessment_guard(ctx.redis, ctx.keys, request.incident_id) if request.guarded else ""
    ttl = ctx.settings.confirmation_ttl_seconds
    request = store.prepared(action_id, dry_run=summary, guard=guard, ttl_seconds=ttl)
    text, blocks = action_blocks.confirmation(request, ctx.templates, ctx.clock.now())
    ts = _post(ctx, request.channel_id, text, blocks)
    if ts:
        store.set_fields(action_id, {"message_ts": ts})
    try:
        jobs.enqueue_in(ctx.settings, jobs.ACTION_EXPIRE, timedelta(seconds=ttl + 1), action_id, ctx.runtime_path,
                        redis=ctx.redis)
    except RedisError:
        log.exception("could not schedule the expiry of action %s (a late click is still refused)", action_id)
    return ActionStatus.AWAITING_CONFIRMATION.value


def drain(ctx: Context, cluster: str, *, watchdog: bool = False) -> dict[str, Any]:
    """Run ``cluster``'s FIFO to the end if we can take its lock; see the module docstring."""
    queue = action_queue(ctx, cluster)
    report: dict[str, Any] = {"ran": [], "unknown": [], "held_by": None}
    ctx.redis.delete(ctx.keys.action_watchdog(cluster) if watchdog else ctx.keys.action_drain_pending(cluster))
    while True:
        lock = ActionLock(ctx.redis, cluster, lease_seconds=ctx.settings.action_lease_seconds, keys=ctx.keys)
        if lock.acquire() is None:
            holder = lock.holder()
            report["held_by"] = f"{holder[0]}:{holder[1]}" if holder else None
            if len(queue):
                _ensure_watchdog(ctx, cluster)
            return report
        try:
            with LeaseKeeper(lock) as keeper:
                _drain_held(ctx, queue, lock, keeper, report)
        finally:
            try:
                lock.release()
            except RedisError:
                log.exception("could not release the action lock of %s; it expires with its lease", cluster)
        if not len(queue):
            return report


def _record_lock_wait(ctx: Context, cluster: str, action_id: str) -> None:
    """How long the action waited from its confirmation (queued) until it held the lock."""
    from observability import metrics

    queued_at = ctx.redis.hget(ctx.keys.action(action_id), "queued_at")
    if queued_at:
        metrics.record_lock_wait(cluster, time.time() - float(queued_at))


def _drain_held(ctx: Context, queue: ActionQueue, lock: ActionLock, keeper: LeaseKeeper,
                report: dict[str, Any]) -> None:
    store = action_store(ctx)
    assert lock.fence is not None
    while True:
        try:
            keeper.check()
        except LeaseLost:
            log.warning("lost the action lock of %s; another drainer takes over", queue.cluster)
            return
        head = queue.head()
        if head is None:
            return
        request = store.find(head)
        if request is None:
            queue.drop(head)
            continue
        if request.status == ActionStatus.RUNNING:
            _outcome_unknown(ctx, queue, lock, request)
            report["unknown"].append(head)
            continue
        if request.status != ActionStatus.QUEUED:
            queue.drop(head)
            continue
        started = queue.start(head, token=lock.token, fence=lock.fence, worker=lock.owner)
        if started == "lost":
            return
        if started != "started":
            continue
        request = store.get(head)
        _record_lock_wait(ctx, queue.cluster, head)
        _ensure_watchdog(ctx, queue.cluster)
        show_state(ctx, request)
        request_positions_refresh(ctx.settings, ctx.redis, queue.cluster, ctx.runtime_path)
        status, text = _execute(ctx, request, keeper)
        if queue.finish(request, status, text, fence=lock.fence):
            request = store.get(head)
            show_state(ctx, request)
            undo = recovery_record.undo_of(ctx.redis, ctx.keys, request.id) if status == ActionStatus.SUCCEEDED else {}
            _post(ctx, request.channel_id, *action_blocks.outcome(request, ctx.templates, undo=undo.get("description", ""),
                                                                  undo_note=undo.get("note", "")))
            _after_action(ctx, request)
        report["ran"].append(head)


def _after_action(ctx: Context, request: ActionRequest) -> None:
    """Guided recovery's bookkeeping (done steps, the re-assessment after a step); never stops the queue."""
    try:
        recovery_record.action_finished(ctx.settings, ctx.redis, request,
                                        lambda channel, text: _post(ctx, channel, text))
    except Exception:  # noqa: BLE001 - the action ran and is audited; the follow-up is an extra
        log.exception("could not follow up action %s for guided recovery", request.id)


def _say(ctx: Context, macro: str, /, **arguments: Any) -> str:
    """An outcome text of the serialized path (``templates/kube_actions.txt.j2``; plain, escaped where shown)."""
    return ctx.templates.macro("kube_actions.txt.j2", macro, **arguments)


def _execute(ctx: Context, request: ActionRequest, keeper: LeaseKeeper) -> tuple[ActionStatus, str]:
    last_post = [0.0]

    def progress(text: str) -> None:
        now = time.monotonic()
        if now - last_post[0] < PROGRESS_INTERVAL:
            return
        last_post[0] = now
        _post(ctx, request.channel_id, action_blocks.progress(request, text, ctx.templates),
                 thread_ts=request.message_ts or None)

    try:
        outcome = ctx.runtime.executor.execute(request, keeper.check, progress)
    except LeaseLost as error:
        return ActionStatus.OUTCOME_UNKNOWN, _say(ctx, "lease_lost", reason=error.user_text())
    except IncidentBotError as error:
        return ActionStatus.FAILED, error.user_text()
    except Exception as error:  # noqa: BLE001 - we cannot know how far it got
        log.exception("action %s failed unexpectedly", request.id)
        return ActionStatus.OUTCOME_UNKNOWN, _say(ctx, "unexpected_error", error=type(error).__name__,
                                                  detail=str(error)[:300])
    if outcome.succeeded:
        try:
            recovery_record.record_undo(ctx.redis, ctx.keys, request, outcome.undo, outcome.undo_note)
            if request.kind == "delete-node":
                node_restore.node_deleted(ctx.settings, ctx.redis, request, outcome.before)
        except RedisError:
            log.exception("could not record the inverse of action %s (no Undo offered, no restore)", request.id)
    return (ActionStatus.SUCCEEDED if outcome.succeeded else ActionStatus.FAILED), outcome.text


def _outcome_unknown(ctx: Context, queue: ActionQueue, lock: ActionLock, request: ActionRequest) -> None:
    """The head was left ``running`` by a holder whose lease expired: say so, audit, never re-run."""
    text = _say(ctx, "worker_died", worker=request.worker, fence=request.fence)
    if queue.mark_unknown(request, token=lock.token, outcome=text):
        request = action_store(ctx).get(request.id)
        show_state(ctx, request)
        _post(ctx, request.channel_id, *action_blocks.outcome(request, ctx.templates))
