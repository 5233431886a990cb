"""RQ entry point of the assessment; the logic is :mod:`service.assessment`."""

from __future__ import annotations

from typing import Any

from service.assessment import run_routed
from service.context import Context


def run_assessment(incident_id: str | None, channel: str, *, progress_ts: str | None = None,
                   response_url: str | None = None, cluster: str | None = None,
                   fleet_run: str | None = None, after_action: str | None = None) -> dict[str, Any]:
    """Run the checks of ``cluster``, keep the progress message up to date, post the verdict (after a recovery
    step, ``after_action``: opening with what it changed); returns a summary."""
    return run_routed(Context.load(), incident_id, channel, progress_ts=progress_ts, response_url=response_url,
                      cluster=cluster, fleet_run=fleet_run, after_action=after_action)
