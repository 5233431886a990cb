"""Resolving (service layer): validate the cluster against the runbook's recovery checklist, then resolve — or refuse.

The bot never resolves on a word alone: ``/k8s resolve`` queues the resolve job
(``workers.resolve.validate_and_resolve`` → :func:`validate_and_resolve`), which runs a validation
assessment (its snapshot goes on the timeline like any other, so the post-mortem sees the final state), judges it with :mod:`incident.resolve_check`, and either resolves (announce,
stop reminders, queue the post-mortem) or posts what is still wrong. The commander can override
with a reason, which is recorded on the status change and shown in the post-mortem.
"""

from __future__ import annotations

from typing import Any

from chat.escape import truncate
from service.lifecycle import change_status
from service.context import Context
from incident.errors import InvalidTransition
from incident.model import Status
from incident.timeline import EntryKind, assessment_payload
from incident.resolve_check import checklist_passed, resolve_checklist
from kube.assessor import assess
from kube.checks import resolve_validation_checks


def validate_and_resolve(services: Context, incident_id: str, user_id: str,
                         override_reason: str | None = None) -> dict[str, Any]:
    """Validate and resolve (or refuse); returns what was decided (also visible in RQ's job result).

    ``services.settings`` should count Warning events over the resolve window
    (:data:`incident.resolve_check.RESOLVE_EVENT_WINDOW_MINUTES`), as the job's context does.
    """
    settings = services.settings
    incident = services.store.get(incident_id)
    if incident.status == Status.RESOLVED:
        return {"resolved": True, "already": True}
    assessment = assess(settings, checks=resolve_validation_checks())
    items = resolve_checklist(assessment)
    passed = checklist_passed(items)
    timeline = services.store.timeline(incident_id)
    timeline.append(EntryKind.ASSESSMENT, "bot", assessment_payload(assessment, purpose="resolve-validation"),
                    at=services.clock.now())
    timeline.append(EntryKind.RESOLVE_CHECK, user_id, {
        "passed": passed, "override_reason": override_reason,
        "items": [{"name": i.name, "passed": i.passed, "detail": i.detail} for i in items],
    }, at=services.clock.now())
    if not passed and not override_reason:
        text = services.templates.render("resolve_refused.slack.j2", items=items, commander=incident.commander)
        services.outbox.post(incident.channel_id, "Not resolving yet: the recovery checklist fails.",
                             [{"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 3000)}}],
                             incident_id=incident.id)
        return {"resolved": False, "failed": [i.name for i in items if not i.passed]}
    text = services.templates.render("resolve_passed.slack.j2", items=items, override=override_reason, actor=user_id)
    services.outbox.post(incident.channel_id, "Recovery checklist", [
        {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 3000)}}], incident_id=incident.id)
    try:
        change_status(services, incident, Status.RESOLVED, user_id,
                      note=f"override: {override_reason}" if override_reason and not passed else "",
                      extra={"override_reason": override_reason} if override_reason and not passed else None)
    except InvalidTransition:
        return {"resolved": True, "already": True}
    return {"resolved": True, "override": bool(override_reason and not passed)}
