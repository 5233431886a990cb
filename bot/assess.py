"""``/k8s assess`` from Slack: post a progress message and hand the work to an RQ worker.

The bot never talks to the cluster itself; the job (``workers.assess.run_assessment``) updates
the progress message in place and posts the verdict.
"""

from __future__ import annotations

from rq import Queue, Retry

from bot.lifecycle import Reply
from bot.services import BotServices
from incident.model import Incident

ASSESS_JOB = "workers.assess.run_assessment"


def request_assessment(services: BotServices, incident: Incident | None, channel_id: str, user_id: str) -> Reply:
    """Queue an assessment whose result goes to ``channel_id`` (the incident's, when there is one)."""
    target = incident.channel_id if incident else channel_id
    progress_ts = services.slack.post_message(target, f":mag: Assessment requested by <@{user_id}>: queued…")
    budget = services.settings.assessment_budget_seconds
    queue = Queue(services.keys.queue_name("assess"), connection=services.redis)
    queue.enqueue(
        ASSESS_JOB,
        incident.id if incident else None,
        target,
        progress_ts=progress_ts,
        job_timeout=int(budget) + 60,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        retry=Retry(max=1),  # read-only: safe to run again after a worker crash
        meta={"requested_by": user_id},
    )
    if incident is not None:
        services.store.timeline(incident.id).append("assessment_requested", user_id, {"progress_ts": progress_ts},
                                                    at=services.clock.now())
    return Reply("")
