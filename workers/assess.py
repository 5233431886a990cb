"""RQ entry point of the assessment; the logic is :mod:`service.assessment`."""

from __future__ import annotations

from typing import Any

from service.assessment import run_job
from service.context import Context


def run_assessment(incident_id: str | None, channel: str, *, progress_ts: str | None = None,
                   response_url: str | None = None, after_action: str | None = None) -> dict[str, Any]:
    """Run the checks, keep the progress message up to date, post the verdict; returns a short summary."""
    ctx = Context.load()
    return run_job(ctx.settings, ctx.slack, ctx.redis, incident_id, channel, progress_ts=progress_ts,
                   response_url=response_url, after_action=after_action)
