"""RQ entry point of PagerDuty pages; the logic is :mod:`service.paging`."""

from __future__ import annotations

from typing import Any

from service.context import Context
from service.paging import DEFAULT_PAGERDUTY_EVENTS_URL, run_page


def page_escalation(incident_id: str, rule_key: str, requested_by: str,
                    events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL) -> dict[str, Any]:
    """Trigger PagerDuty for an accepted escalation; say the outcome in the incident channel."""
    ctx = Context.load()
    return run_page(ctx.settings, ctx.redis, ctx.slack, incident_id, rule_key, requested_by, events_url)
