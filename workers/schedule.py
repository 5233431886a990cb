"""RQ entry points of the reminder schedule; the logic is :mod:`service.reminders`.

The job paths are stored in Redis with every scheduled tick, so they stay as they are (see
:data:`service.jobs.CATALOGUE`).
"""

from __future__ import annotations

from typing import Any

from incident.clock import from_epoch
from service import reminders
from service.context import Context


def status_tick(incident_id: str, generation: int, at_epoch: float | None = None) -> dict[str, Any]:
    """Send what is due for the incident and schedule the next tick (``at_epoch``: evaluate as of then)."""
    ctx = Context.load()
    now = from_epoch(at_epoch) if at_epoch is not None else ctx.clock.now()
    return reminders.run_tick(ctx.settings, ctx.redis, ctx.slack, incident_id, generation, now).to_dict()


def page_escalation(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The page job under its former path (``workers.schedule.page_escalation``): jobs queued before the move still run."""
    from workers.page import page_escalation as page

    return page(*args, **kwargs)
