"""Run an RQ worker on the bot's queues, with RQ's scheduler for status/escalation reminders.

A central worker also probes the central clusters' apiservers (:mod:`service.reach`) and, at each RQ
maintenance, finalizes assessments that a cluster's agent started and never finished (:mod:`service.abandoned`).
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from rq import Worker

from incident.settings import Settings
from service.context import Context
from service.jobs import CATALOGUE, all_queues, queue_kinds

log = logging.getLogger(__name__)


class MeasuredWorker(Worker):
    """An RQ worker that times every job by kind and tags its log lines with the job id.

    ``perform_job`` runs in the forked work horse; its metrics reach the worker's ``/metrics`` through
    ``prometheus_client``'s multiprocess mode (:func:`observability.metrics.enable_multiprocess`).
    """

    kinds: dict[str, str] = {}
    """RQ queue name → job kind (``assess``, ``actions``, …)."""

    def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> bool:
        from observability.logging_setup import log_context
        from observability import metrics

        started = time.monotonic()
        incident_id = (job.kwargs or {}).get("incident_id") if isinstance(job.kwargs, dict) else None
        with log_context(request_id=str(job.id), incident_id=str(incident_id) if incident_id else None):
            succeeded = bool(super().perform_job(job, queue, *args, **kwargs))
        metrics.record_job(self.kinds.get(queue.name, queue.name), time.monotonic() - started,
                           "ok" if succeeded else "error")
        return succeeded


class CentralWorker(MeasuredWorker):
    """A central worker: at every RQ maintenance it also sweeps the agents' queues for assessments whose agent
    died mid-way (:func:`service.abandoned.sweep_agent_queues`)."""

    central_settings: Settings

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        from service.abandoned import sweep_agent_queues

        try:
            finalized = sweep_agent_queues(Context.from_settings(self.central_settings))
        except Exception:  # noqa: BLE001 - the next maintenance retries; the worker keeps serving
            log.exception("could not sweep the agents' queues for interrupted assessments")
            return
        if finalized:
            log.info("posted partial verdicts for assessments interrupted on agents: %s", ", ".join(finalized))


MAINTENANCE_INTERVAL_SECONDS = 60
"""How often a worker sweeps RQ's registries (RQ's default: 10 min). The sweep is what re-runs a job whose
worker died (an assessment, a post-mortem) once its heartbeat has lapsed; during an incident a minute
is the most such a job should wait. Workers share one maintenance lock, so the cost stays one sweep."""
WORKER_TTL_SECONDS = MAINTENANCE_INTERVAL_SECONDS + 20
"""An idle worker only looks at the clock when its blocking dequeue times out (``worker_ttl`` − 15 s; RQ's
default 405 s): this makes that 65 s, so the sweep above really happens about every minute."""

JOB_MODULES: tuple[str, ...] = tuple(sorted({spec.path.rpartition(".")[0] for spec in CATALOGUE.values()}))
"""The modules of every job in the catalogue (``service.jobs``)."""


def start_observed(settings: Settings, *, burst: bool) -> None:
    """What a worker or an agent does before its loop: SIGTERM is a clean stop until RQ takes it over,
    metrics of the forked work horses are collected, logs are JSON lines, ``/metrics`` is served (not in
    burst mode), and every job module of the catalogue is imported once, before any fork."""
    from observability import metrics
    from observability.logging_setup import configure_logging

    signal.signal(signal.SIGTERM, _stop_before_the_loop)
    metrics.enable_multiprocess()
    configure_logging(settings)
    if not burst:
        try:
            metrics.serve_worker_metrics(settings.http_host, settings.metrics_port or settings.http_port)
        except OSError as error:
            log.warning("metrics not served on %s:%d: %s", settings.http_host,
                        settings.metrics_port or settings.http_port, error)
    _preload_jobs(settings)


def _preload_jobs(settings: Settings) -> None:
    """Import the job modules once, before forking: work horses then start a job without ~1.5 s of imports; and
    what the jobs load lazily (the check modules, the compiled templates: :func:`service.warm.warm_up`)."""
    import importlib

    from service.warm import warm_up

    for name in JOB_MODULES:
        importlib.import_module(name)
    warm_up(settings)


def _heal_schedules(settings: Settings) -> None:
    """Start missing or stalled reminder schedules (incidents opened before a restart, exhausted retries)."""
    from service.reminders import ensure_schedules

    try:
        healed = ensure_schedules(settings, Context.from_settings(settings).redis)
    except Exception:  # noqa: BLE001 - a worker must start even if healing fails; the next start retries
        log.exception("could not check the reminder schedules at start")
        return
    if healed:
        log.info("restarted reminder schedules of incidents %s", ", ".join(healed))


def _finalize_interrupted_assessments(settings: Settings) -> None:
    """Tell the channels about assessments whose worker died for good (a partial verdict, missing checks named)."""
    from service.assessment import finalize_interrupted

    try:
        finalized = finalize_interrupted(settings)
    except Exception:  # noqa: BLE001 - a worker must start even if this fails; the next start retries
        log.exception("could not finalize interrupted assessments at start")
        return
    if finalized:
        log.info("posted partial verdicts for interrupted assessments %s", ", ".join(finalized))


def _stop_before_the_loop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_worker(settings: Settings, *, with_scheduler: bool = True, burst: bool = False) -> int:
    """Serve every queue of the bot until stopped; returns an exit code.

    Logs are JSON lines (``observability.logging_setup``); metrics of the worker and its forked work horses are
    served on ``HTTP_HOST:HTTP_PORT/metrics`` (the worker has no other HTTP endpoint).
    """
    # Until RQ's loop installs its own SIGTERM handler (it does so only once it starts working), a SIGTERM
    # — a pod replaced right after it started — is a clean stop: nothing is being worked on yet.
    start_observed(settings, burst=burst)
    if not burst:
        _heal_schedules(settings)
        _finalize_interrupted_assessments(settings)
        from service.reach import start_probing

        start_probing(settings)  # the central clusters' apiservers, for the bot's immediate answers
    context = Context.from_settings(settings)
    MeasuredWorker.kinds = queue_kinds(settings)
    CentralWorker.central_settings = settings
    worker = CentralWorker(all_queues(settings), connection=context.redis,
                            maintenance_interval=MAINTENANCE_INTERVAL_SECONDS, worker_ttl=WORKER_TTL_SECONDS)
    worker.work(with_scheduler=with_scheduler, burst=burst, logging_level=settings.log_level)
    return 0
