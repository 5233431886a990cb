"""RQ entry point of the post-mortem draft; the logic is :mod:`service.postmortem`."""

from __future__ import annotations

from typing import Any

from service.context import Context
from service.postmortem import publish_postmortem, request_id_of_job


def post_postmortem(incident_id: str, requested_by: str = "bot", request_id: str | None = None) -> dict[str, Any]:
    """Draft, upload to the incident channel with a short summary, record on the timeline (once per request:
    retries of the job, whose id is the request id, never share a second copy)."""
    ctx = Context.load()
    return publish_postmortem(ctx.settings, ctx.redis, ctx.slack, incident_id, requested_by, request_id_of_job(request_id))
