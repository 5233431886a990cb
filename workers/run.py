"""Run an RQ worker on the bot's queues, with RQ's scheduler for status/escalation reminders."""

from __future__ import annotations

import logging

from rq import Worker

from incident.settings import Settings
from workers.connection import all_queues, get_redis

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, with_scheduler: bool = True, burst: bool = False) -> int:
    """Serve every queue of the bot until stopped; returns an exit code.

    Logs are JSON lines (``bot.logging_setup``); metrics of the worker and its forked work horses are
    served on ``HTTP_HOST:HTTP_PORT/metrics`` (the worker has no other HTTP endpoint).
    """
    from bot import metrics
    from bot.logging_setup import configure_logging

    metrics.enable_multiprocess()
    configure_logging(settings)
    if not burst:
        try:
            metrics.serve_worker_metrics(settings.http_host, settings.http_port)
        except OSError as error:
            log.warning("worker metrics not served on %s:%d: %s", settings.http_host, settings.http_port, error)
    worker = Worker(all_queues(settings), connection=get_redis(settings))
    worker.work(with_scheduler=with_scheduler, burst=burst, logging_level=settings.log_level)
    return 0
