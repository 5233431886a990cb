"""Run an RQ worker on the bot's queues, with RQ's scheduler for status/escalation reminders."""

from __future__ import annotations

import logging

from rq import Worker

from incident.settings import Settings
from workers.connection import all_queues, get_redis


def run_worker(settings: Settings, *, with_scheduler: bool = True, burst: bool = False) -> int:
    """Serve every queue of the bot until stopped; returns an exit code."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker(all_queues(settings), connection=get_redis(settings))
    worker.work(with_scheduler=with_scheduler, burst=burst, logging_level=settings.log_level)
    return 0
