"""What finished actions leave for guided recovery (service layer): done steps, undo records, the re-assessment.

Called by the action drainer (:mod:`service.actions`) for every action it ran, and read by
:mod:`service.recovery` (the plan, its buttons, Undo). Kept apart from it because the drainer must not
import the request side (``service.action_requests`` imports the drainer's queueing):

- a success is remembered per incident (:meth:`Keys.recovery_done`), so the next plan shows that step done;
- an executor that knows the inverse of what it did returns it with the outcome; :func:`record_undo` keeps
  it per action (or why there is none: a restart replaced pods, a deleted node is restored, not undone);
- an action requested from a plan step or an Undo is followed by a re-assessment
  (:func:`queue_reassessment`), whose verdict opens with what the step changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from redis import Redis

from incident.action_kinds import action_specs
from incident.actions import ActionRequest, ActionStatus
from incident.settings import Settings
from incident.templates import renderer_for
from incident.timeline import EntryKind
from persistence.connection import get_keys
from persistence.keys import Keys
from persistence.store import IncidentStore
from service import jobs, node_restore

RECORD_TTL_SECONDS = 30 * 24 * 3600
"""Links between actions, plan steps and undos live as long as an incident's post-mortem is worth writing."""


def done_steps(redis: Redis, keys: Keys, incident_id: str | None) -> dict[str, float]:
    """Descriptions of the actions that succeeded in the incident, with when (the latest success)."""
    if not incident_id:
        return {}
    return {key: float(value) for key, value in text_fields(redis.hgetall(keys.recovery_done(incident_id))).items()}


def text_fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in raw.items()}


# -- after an action finished ------------------------------------------------------------------------


def record_undo(redis: Redis, keys: Keys, request: ActionRequest, undo: dict[str, Any] | None, note: str = "") -> None:
    """Keep the inverse of a finished action (``{"kind", "target", "params"}``), or why it has none."""
    fields: dict[str, str] = {"note": note}
    if undo:
        spec = action_specs().get(str(undo["kind"]))
        params = dict(undo.get("params") or {})
        fields.update(kind=spec.kind, target=str(undo["target"]), params=json.dumps(params, sort_keys=True),
                      description=spec.describe(str(undo["target"]), params))
    key = keys.recovery_undo(request.id)
    with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, RECORD_TTL_SECONDS)
        pipe.execute()


def undo_of(redis: Redis, keys: Keys, action_id: str) -> dict[str, str]:
    """The recorded inverse of an action (``description`` empty: none; ``note`` says why)."""
    return text_fields(redis.hgetall(keys.recovery_undo(action_id)))


def action_finished(settings: Settings, redis: Redis, request: ActionRequest,
                    post: Callable[[str, str], str | None]) -> str | None:
    """Remember a success as done; after a plan step, queue the re-assessment (its progress message via
    ``post(channel, text)``). Returns the re-assessment's job id, if one was queued."""
    keys = get_keys(settings)
    if request.kind == "restore-node" and request.status == ActionStatus.SUCCEEDED:
        node_restore.restored(settings, redis, request)
    if request.incident_id and request.status == ActionStatus.SUCCEEDED:
        with redis.pipeline(transaction=True) as pipe:
            finished = request.finished_at.timestamp() if request.finished_at else time.time()
            pipe.hset(keys.recovery_done(request.incident_id), request.description, repr(finished))
            pipe.expire(keys.recovery_done(request.incident_id), RECORD_TTL_SECONDS)
            pipe.execute()
    link = text_fields(redis.hgetall(keys.recovery_step(request.id)))
    if not link or not request.incident_id or request.status not in (ActionStatus.SUCCEEDED, ActionStatus.FAILED):
        return None
    templates = renderer_for(settings.templates_dir)
    progress_ts = post(request.channel_id, templates.render("recovery_reassess.slack.j2", action=request,
                                                            number=link.get("number"), undo_of=link.get("undo_of")))
    return queue_reassessment(settings, redis, request.incident_id, request.channel_id, progress_ts,
                              after_action=request.id, cluster=request.cluster)


def queue_reassessment(settings: Settings, redis: Redis, incident_id: str, channel: str, progress_ts: str | None, *,
                       after_action: str | None = None, actor: str = "bot", cluster: str | None = None) -> str:
    """Queue an assessment of the incident's cluster (after a step: its verdict opens with the step's delta);
    the job id."""
    job = jobs.enqueue(settings, jobs.ASSESSMENT, incident_id, channel, redis=redis, progress_ts=progress_ts,
                       after_action=after_action, timeout=int(settings.assessment_budget_seconds) + 60,
                       meta={"requested_by": actor, "after_action": after_action}, on_cluster=cluster, cluster=cluster)
    IncidentStore(redis, get_keys(settings)).timeline(incident_id).append(
        EntryKind.ASSESSMENT_REQUESTED, actor, {"progress_ts": progress_ts, "after_action": after_action})
    return str(job.id)


