"""Assessments an agent started and never finished: the central side notices them and says so.

When a cluster's agent dies mid-assessment (SIGKILL, its node gone), its RQ job stays in the ``assess@<cluster>``
queue's started registry. A central worker would retry such a job itself and, once it is out of retries, post a
partial verdict (:func:`service.assessment.finalize_interrupted`); for an agent's queue nobody did: the agent that
could is the one that died. So the central workers sweep the agents' queues at every RQ maintenance
(:func:`sweep_agent_queues`, from ``workers.run``):

- an agent **not seen** within ``AGENT_HEARTBEAT_SECONDS``: each assessment it had started is abandoned now.
  It is failed without a retry (a retry would wait in a queue nobody reads, and run long after anyone wants
  it), and its partial verdict ("interrupted … missing then: …", the checks it had finished) is posted where
  its progress message is, through the outbox (the agent's own queued edits are ahead of it in that channel's
  FIFO, so the stale progress never lands over it). A fleet run gets that cluster's row, so the matrix is
  posted instead of waiting for a row that never comes.
- an agent **seen** (another replica is alive): RQ's own cleanup in that agent retries the job, which says
  "an earlier attempt was interrupted … running again"; only jobs out of retries get their partial verdict here.

Each job is finalized once (its ``meta`` records it), and one central worker sweeps at a time (a Redis lock).
"""

from __future__ import annotations

import logging

from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.registry import StartedJobRegistry

from incident.assessment import Assessment
from incident.clusters import load_registry
from service import jobs
from service.assessment import OutboxTarget, QuietTarget, finalize_failed
from service.cluster_jobs import agent_seen
from service.context import Context

log = logging.getLogger(__name__)

SWEEP_LOCK_SECONDS = 60
"""The sweep's lock lapses after this long if its worker dies holding it."""


def sweep_agent_queues(ctx: Context) -> list[str]:
    """Finalize the assessments of every agent cluster that died mid-way (see the module); returns their job ids."""
    registry = load_registry(ctx.settings)
    agents = [cluster.name for cluster in registry.clusters if cluster.is_agent]
    if not agents:
        return []
    lock = ctx.redis.lock(ctx.keys.agent_sweep_lock(), timeout=SWEEP_LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        return []  # another central worker is sweeping
    try:
        finalized: list[str] = []
        for name in agents:
            queue = jobs.get_queue(ctx.settings, jobs.ASSESSMENT.queue, ctx.redis, cluster=name)
            reason = "the agent running it stopped"
            if agent_seen(ctx, name) is None:
                reason = f"the agent of cluster {name} was not seen for {ctx.settings.agent_heartbeat_seconds} s"
                _fail_started(ctx, StartedJobRegistry(queue=queue), reason)
            settings = registry.settings_for(ctx.settings, name)
            finalized += finalize_failed(settings, queue, ctx.redis, lambda job, state: _target(ctx, job, state), reason,
                                         then=lambda job, assessment, cluster=name: _fleet_row(ctx, job, cluster, assessment))
        return finalized
    finally:
        lock.release()


def _fail_started(ctx: Context, started: StartedJobRegistry, reason: str) -> None:
    """Fail, without a retry, every assessment still marked started on a dead agent's queue."""
    for entry in ctx.redis.zrange(started.key, 0, -1):
        job_id = started.parse_job_id(entry)
        job = Job.fetch(job_id, connection=ctx.redis) if Job.exists(job_id, connection=ctx.redis) else None
        if job is None or job.func_name != jobs.ASSESSMENT.path or job.get_status() != JobStatus.STARTED:
            continue
        log.warning("assessment %s abandoned: %s", job.id, reason)
        with ctx.redis.pipeline() as pipe:
            pipe.zrem(started.key, entry)  # by its entry: the execution's own record may have expired already
            record_job_failure(job, f"abandoned: {reason}", pipe)
            pipe.execute()


def _target(ctx: Context, job: Job, state: dict[str, object]) -> OutboxTarget | QuietTarget:
    channel = str(state.get("channel"))
    if (job.kwargs or {}).get("fleet_run"):
        return QuietTarget(channel)
    progress_ts = state.get("progress_ts")
    return OutboxTarget(ctx, channel, str(progress_ts) if progress_ts else None)


def _fleet_row(ctx: Context, job: Job, cluster: str, assessment: Assessment) -> None:
    run_id = (job.kwargs or {}).get("fleet_run")
    if not run_id:
        return
    from chat.assessment_blocks import interrupted_text
    from service import fleet

    fleet.add_fleet_row(ctx, str(run_id), cluster, {
        "scope": assessment.verdict.scope, "headline": f"{assessment.verdict.headline} — "
        f"{interrupted_text(assessment.interrupted or {})}", "patterns": [p.key for p in assessment.verdict.patterns],
        "duration_s": round(assessment.duration_s, 3)})
