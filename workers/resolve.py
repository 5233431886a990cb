"""RQ entry point of ``/k8s resolve``'s validation; the logic is :mod:`service.resolve`."""

from __future__ import annotations

from typing import Any

from incident.resolve_check import RESOLVE_EVENT_WINDOW_MINUTES
from service.cluster_jobs import job_context
from service.context import Context
from incident.resolve_check import ChecklistItem
from service.resolve import conclude
from service.resolve import validate_and_resolve as validate


def validate_and_resolve(incident_id: str, user_id: str, override_reason: str | None = None) -> dict[str, Any]:
    """Run the validation assessment; resolve if the checklist passes (or the commander overrides)."""
    ctx = Context.load(warning_event_window_minutes=RESOLVE_EVENT_WINDOW_MINUTES)
    incident = ctx.store.get(incident_id)
    return validate(job_context(ctx, incident.cluster), incident_id, user_id, override_reason)


def conclude_resolve(incident_id: str, user_id: str, override_reason: str | None,
                     items: list[list[Any]]) -> dict[str, Any]:
    """(After an agent validated its cluster) resolve, or post what is still wrong."""
    checklist = [ChecklistItem(str(name), bool(passed), str(detail)) for name, passed, detail in items]
    return conclude(Context.load(), incident_id, user_id, override_reason, checklist)
