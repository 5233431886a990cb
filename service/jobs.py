"""The job catalogue: every RQ job the bot queues, and the only place that queues them.

A job's import path is stored in Redis with every queued, scheduled and failed job, so it must stay
stable across releases: the paths live in this one table (:data:`CATALOGUE`), next to the queue,
timeout, retries and TTLs of each kind. Everything that wants work done in a worker calls
:func:`enqueue` (or :func:`enqueue_at` / :func:`enqueue_in`) with a :class:`JobSpec`; no other module
builds an ``rq.Queue`` for enqueueing or names a job path.

Why RQ jobs at all: Slack wants an answer within 3 s, the cluster can take a minute, and a job in
Redis survives the bot process (AOF keeps it across Redis restarts; the workers' registry sweep re-runs
one whose worker died).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.job import Job

from incident.clusters import load_registry
from incident.settings import Settings
from persistence.connection import get_keys, get_redis

QUEUE_KINDS: tuple[str, ...] = ("actions", "assess", "schedule", "postmortem", "default")
"""Queue kinds in the order a worker serves them: risky actions first."""

DAY = 24 * 3600
FAILED_KEPT_SECONDS = 7 * DAY
"""How long a failed job stays in RQ's failed registry for a person to look at (``rq info``)."""


@dataclass(frozen=True)
class JobSpec:
    """One kind of job: where RQ finds it and how it is queued."""

    name: str
    path: str
    """The job function's import path; stored in Redis with every job, so never rename it."""
    queue: str
    timeout: int | None = None
    """Seconds before RQ kills the work horse (``None``: RQ's default of 180 s)."""
    retries: int = 0
    retry_intervals: tuple[int, ...] = ()
    result_ttl: int | None = None
    failure_ttl: int = FAILED_KEPT_SECONDS
    why: str = ""
    """Why this queue, timeout and retry policy (shown in ``docs/architecture.md``)."""
    aliases: tuple[str, ...] = field(default=())
    """Former paths of this job; jobs queued under them before an upgrade still run."""
    cluster_bound: bool = False
    """It talks to one cluster: queued on that cluster's queue (``assess@prod-eu``), served by its agent or the central workers."""

    def options(self, timeout: int | None = None) -> dict[str, Any]:
        """RQ's ``enqueue`` options of this kind (``timeout`` overrides the spec's)."""
        options: dict[str, Any] = {"failure_ttl": self.failure_ttl}
        if timeout is not None or self.timeout is not None:
            options["job_timeout"] = timeout if timeout is not None else self.timeout
        if self.result_ttl is not None:
            options["result_ttl"] = self.result_ttl
        if self.retries:
            options["retry"] = Retry(max=self.retries, interval=list(self.retry_intervals) or 0)
        return options


ASSESSMENT = JobSpec(
    "assessment", "workers.assess.run_assessment", "assess", retries=1, result_ttl=3600, cluster_bound=True,
    why="read-only, so one retry after a worker crash is safe; the timeout is the budget + 60 s (given at enqueue)")
RESOLVE = JobSpec(
    "resolve", "workers.resolve.validate_and_resolve", "assess", retries=1, cluster_bound=True,
    why="a validation assessment, then the resolve; the resolve is a guarded transition, so a retry cannot resolve twice")
RESOLVE_CONCLUDE = JobSpec(
    "resolve_conclude", "workers.resolve.conclude_resolve", "schedule", timeout=120, retries=2, retry_intervals=(5, 30),
    why="Slack and Redis only, after an agent validated its cluster; the resolve is a guarded transition, so a retry "
        "cannot resolve twice")
POSTMORTEM = JobSpec(
    "postmortem", "workers.postmortem.post_postmortem", "postmortem", timeout=300, retries=1,
    why="drafting is read-only apart from its upload, whose record in Redis makes a retry share no second file")
STATUS_TICK = JobSpec(
    "status_tick", "workers.schedule.status_tick", "schedule", timeout=120, retries=3, retry_intervals=(5, 15, 30),
    result_ttl=600, why="sends are claimed once per token, so retries never ping twice; generations drop stale ticks")
PAGE = JobSpec(
    "page", "workers.page.page_escalation", "schedule", timeout=60, retries=3, retry_intervals=(10, 30, 60),
    result_ttl=DAY, aliases=("workers.schedule.page_escalation",),
    why="PagerDuty deduplicates by dedup_key, so retries after 429/5xx are safe")
ACTION_PREPARE = JobSpec(
    "action_prepare", "workers.actions.prepare_action", "assess", timeout=120, retries=1, result_ttl=3600, cluster_bound=True,
    why="validation and server-side dry-run only: read-only, one retry is safe")
ACTION_DRAIN = JobSpec(
    "action_drain", "workers.actions.drain_action_queue", "actions", timeout=6 * 3600, result_ttl=3600, cluster_bound=True,
    why="never retried: the fenced lock and the watchdog drain recover a dead drainer; a drainer may run many drains")
ACTION_EXPIRE = JobSpec(
    "action_expire", "workers.actions.expire_action", "schedule", result_ttl=600,
    why="Slack and Redis only (no cluster): the confirmation's buttons go away at the deadline")
ACTION_POSITIONS = JobSpec(
    "action_positions", "workers.actions.refresh_positions", "default", timeout=300, result_ttl=600,
    why="Slack and Redis only: waiting actions' messages show their positions, off the serialized path")

ALERT_NOTIFICATION = JobSpec(
    "alert_notification", "workers.alerts.process_notification", "default", timeout=300, retries=5,
    retry_intervals=(2, 5, 15, 30, 60), result_ttl=DAY,
    why="one Alertmanager notification; its job id is the notification's idempotency key and the result is kept a "
        "day, so a retried delivery is recognised; processing is idempotent per alert fingerprint (under the group's "
        "lock), so RQ's retries after a Slack or Redis failure never announce an alert twice")

CLUSTER_QUEUE_KINDS: tuple[str, ...] = ("actions", "assess")
"""Queue kinds that exist once per registered cluster (the kinds of the cluster-bound jobs), in priority order."""

NODE_WATCH = JobSpec(
    "node_watch", "workers.recovery.watch_node", "assess", timeout=60, result_ttl=600, cluster_bound=True,
    why="read-only (one node GET), re-queued by itself until the deleted node registers again or the watch ends; on "
        "its cluster's queue (an agent cluster's agent runs it: nothing outside that cluster reaches its apiserver)")
NODE_REBALANCE = JobSpec(
    "node_rebalance", "workers.recovery.check_rebalance", "assess", timeout=60, result_ttl=600, cluster_bound=True,
    why="read-only: a restored node's Ready, schedulable and pods landed, once, after the rebalance window; on its "
        "cluster's queue, like the watch")

CATALOGUE: Mapping[str, JobSpec] = {spec.name: spec for spec in (
    ASSESSMENT, RESOLVE, POSTMORTEM, STATUS_TICK, PAGE, ACTION_PREPARE, ACTION_DRAIN, ACTION_EXPIRE, ACTION_POSITIONS,
    ALERT_NOTIFICATION, RESOLVE_CONCLUDE, NODE_WATCH, NODE_REBALANCE)}
"""Every job kind by name."""


def get_queue(settings: Settings, kind: str, redis: Redis | None = None, cluster: str | None = None) -> Queue:
    """The RQ queue for one kind of job (of ``cluster``, for a cluster-bound kind in a registry of many)."""
    if kind not in QUEUE_KINDS:
        raise ValueError(f"unknown queue kind {kind!r}; expected one of {', '.join(QUEUE_KINDS)}")
    keys = get_keys(settings)
    if cluster is not None and kind in CLUSTER_QUEUE_KINDS and not load_registry(settings).uses_legacy_queues(cluster):
        return Queue(keys.cluster_queue_name(kind, cluster), connection=redis or get_redis(settings))
    return Queue(keys.queue_name(kind), connection=redis or get_redis(settings))


def all_queues(settings: Settings) -> list[Queue]:
    """Every queue a central worker serves, highest priority first: its own, then each central cluster's."""
    queues = [get_queue(settings, kind) for kind in QUEUE_KINDS]
    registry = load_registry(settings)
    if not registry.implicit:
        queues[1:1] = [get_queue(settings, kind, cluster=c.name) for c in registry.central()
                       for kind in CLUSTER_QUEUE_KINDS]
    return queues


def queue_kinds(settings: Settings) -> dict[str, str]:
    """RQ queue name → job kind, for every queue a central worker serves (metrics label jobs by kind)."""
    keys = get_keys(settings)
    kinds = {keys.queue_name(kind): kind for kind in QUEUE_KINDS}
    registry = load_registry(settings)
    if not registry.implicit:
        kinds.update({keys.cluster_queue_name(kind, c.name): kind for c in registry.central() for kind in CLUSTER_QUEUE_KINDS})
    return kinds


def cluster_queues(settings: Settings, cluster: str) -> list[Queue]:
    """The queues of one cluster's cluster-bound jobs (what its agent serves), highest priority first."""
    keys = get_keys(settings)
    return [Queue(keys.cluster_queue_name(kind, cluster), connection=get_redis(settings)) for kind in CLUSTER_QUEUE_KINDS]


def enqueue(settings: Settings, spec: JobSpec, *args: Any, redis: Redis | None = None, timeout: int | None = None,
            job_id: str | None = None, meta: dict[str, Any] | None = None, description: str | None = None,
            on_cluster: str | None = None, **kwargs: Any) -> Job:
    """Queue one job of kind ``spec`` now; ``args``/``kwargs`` are the job function's.

    ``on_cluster``: the cluster a cluster-bound job is for (its queue; see :func:`get_queue`).
    """
    return get_queue(settings, spec.queue, redis, _routed(spec, on_cluster)).enqueue(
        spec.path, *args, job_id=job_id, meta=meta, description=description, **spec.options(timeout), **kwargs)


def enqueue_at(settings: Settings, spec: JobSpec, when: datetime, *args: Any, redis: Redis | None = None,
               job_id: str | None = None, **kwargs: Any) -> Job:
    """Schedule one job of kind ``spec`` at ``when`` (RQ's scheduler moves it to the queue then)."""
    return get_queue(settings, spec.queue, redis).enqueue_at(
        when, spec.path, *args, job_id=job_id, **spec.options(), **kwargs)


def enqueue_in(settings: Settings, spec: JobSpec, delay: timedelta, *args: Any, redis: Redis | None = None,
               description: str | None = None, on_cluster: str | None = None, **kwargs: Any) -> Job:
    """Schedule one job of kind ``spec`` after ``delay``."""
    return get_queue(settings, spec.queue, redis, _routed(spec, on_cluster)).enqueue_in(
        delay, spec.path, *args, description=description, **spec.options(), **kwargs)


def job_exists(settings: Settings, job_id: str, redis: Redis | None = None) -> bool:
    """Whether a job with this id is still known to RQ (queued, running, finished within its TTL or failed)."""
    return Job.exists(job_id, connection=redis or get_redis(settings))


def _routed(spec: JobSpec, cluster: str | None) -> str | None:
    return cluster if spec.cluster_bound else None
