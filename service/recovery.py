"""Guided recovery (service layer): the plan under each verdict, a click on a step, the re-assessment after it, Undo.

- **The plan** (:func:`verdict_extras`): every published verdict carries the recovery plan of its
  assessment (:func:`incident.recovery.build_plan`), addressed by the assessment's ``ref`` (stored on its
  timeline entry). Steps already done in the incident (:meth:`Keys.recovery_done`) are shown done.
- **A click on a step** (:func:`click_step`; like the other clicks here, requested once even when the
  inbox replays it after a crash: :func:`service.action_requests.submit_request`) is a normal action request (authorization, dry-run,
  confirmation, the per-cluster queue, audit) once three things hold: the button's assessment is the
  incident's latest (else the fresh plan is shown instead), no action finished since it was drawn (else a
  fresh assessment is queued), and the button names exactly a step of the plan rebuilt from the stored
  evidence (else it is refused: a forged value cannot target another object). The request is linked to
  its step (:meth:`Keys.recovery_step`).
- **After a step** (:mod:`service.recovery_record`, called by the action drainer): a success is
  remembered as done; a step from a plan (or an undo) gets a re-assessment, whose verdict opens with the
  delta (cleared, still failing, new) and, when the step made things worse, its Undo. A plan whose first
  step is done by hand (the control plane: no button, no action) is compared with the next assessment
  instead, the one the responder asks for when done.
- **The early look** (:func:`early_look`): the re-assessment after a step runs the checks that decide the
  step's pattern first (:func:`incident.recovery.deciding_checks`) and shows what they say (cleared / still
  failing, marked partial) in its progress message before the other checks run.
- **Undo** (:func:`click_undo`): the inverse the executor recorded (cordon ↔ uncordon, scale → the
  previous replicas, label → the previous value) is requested, like any action, once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis import Redis
from slack_sdk.models.blocks import Block

from chat import recovery_blocks
from chat.recovery_blocks import StepButton
from incident.actions import ActionRequest
from incident.assessment import Assessment, CheckResult
from incident.errors import ConfirmationError, IncidentBotError, NotInIncidentChannel
from incident.model import Incident
from incident.assessment import verdict_of_entry
from incident.recovery import (
    PlanStep,
    RecoveryPlan,
    build_plan,
    deciding_checks,
    delta,
    early_delta,
    episode_starts,
    plan_step,
)
from incident.settings import Settings
from incident.templates import renderer_for
from incident.timeline import EntryKind, TimelineEntry
from persistence.connection import get_keys
from persistence.keys import Keys
from persistence.store import IncidentStore
from service.action_requests import authorize, requested_reply, submit_request
from service.recovery_record import RECORD_TTL_SECONDS, done_steps, queue_reassessment, text_fields, undo_of
from service import inbox, node_restore
from service.context import Context
from service.lifecycle import Reply

log = logging.getLogger(__name__)



def new_ref() -> str:
    """The id of one published assessment (on its timeline entry and in its plan's buttons)."""
    return uuid.uuid4().hex[:12]


def ref_of(entry: TimelineEntry) -> str:
    """An assessment entry's ref (entries written without one, such as the resolve check's, use their id)."""
    return str(entry.data.get("ref") or entry.id)


def _pattern_keys(entry: TimelineEntry) -> set[str]:
    return {str(p.get("key")) for p in verdict_of_entry(entry.data).get("patterns") or () if isinstance(p, dict)}


def _history(store: IncidentStore, incident_id: str, upto: str | None = None) -> list[tuple[float, set[str]]]:
    """``(when, pattern keys)`` of the incident's assessments in order (up to and including entry ``upto``)."""
    points = []
    for entry in store.timeline(incident_id).iter_entries({EntryKind.ASSESSMENT.value}):
        points.append((entry.at.timestamp(), _pattern_keys(entry)))
        if entry.id == upto:
            break
    return points


def plan_of(store: IncidentStore, incident_id: str, entry: TimelineEntry,
            done: dict[str, float]) -> tuple[Assessment, RecoveryPlan] | None:
    """The stored assessment of an entry and its plan as it was drawn (``None`` for an entry without a snapshot)."""
    snapshot = entry.data.get("snapshot")
    if not isinstance(snapshot, dict):
        return None
    assessment = Assessment.from_json(snapshot)
    episodes = episode_starts(_history(store, incident_id, entry.id), _pattern_keys(entry), entry.at.timestamp())
    return assessment, build_plan(assessment, ref_of(entry), done, episodes)


def _entry_with_ref(store: IncidentStore, incident_id: str, ref: str) -> TimelineEntry | None:
    found = None
    for entry in store.timeline(incident_id).iter_entries({EntryKind.ASSESSMENT.value}):
        if ref_of(entry) == ref:
            found = entry
    return found


# -- the plan under a verdict ------------------------------------------------------------------------


def verdict_extras(settings: Settings, redis: Redis | None, incident_id: str | None, assessment: Assessment,
                   ref: str, after_action: str | None = None) -> tuple[list[Block], list[Block]]:
    """``(before, plan)`` blocks of a verdict: the delta after a plan step (if it follows one), and the plan."""
    templates = renderer_for(settings.templates_dir)
    if redis is None or not incident_id:
        return [], []  # no incident: nothing to address the plan's buttons to
    keys = get_keys(settings)
    done = done_steps(redis, keys, incident_id)
    current = {match.key for match in assessment.verdict.patterns}
    episodes = episode_starts(_history(IncidentStore(redis, keys), incident_id), current, time.time())
    plan = build_plan(assessment, ref, done, episodes)
    before: list[Block] = []
    try:
        if after_action:
            before = _delta_blocks(settings, redis, keys, incident_id, assessment, after_action, done)
        else:
            before = _by_hand_delta_blocks(settings, IncidentStore(redis, keys), incident_id, assessment, done)
    except Exception:  # noqa: BLE001 - the verdict itself must land; the delta is an extra
        log.exception("could not compare the assessment after action %s", after_action)
    return before, recovery_blocks.plan_blocks(plan, templates)


def _by_hand_delta_blocks(settings: Settings, store: IncidentStore, incident_id: str, after: Assessment,
                          done: dict[str, float]) -> list[Block]:
    """After a plan whose first step is done by hand (the control plane): no button, no action to follow, so the
    next assessment — the responder's *re-assess when done* — opens with the delta against that plan's."""
    latest = store.timeline(incident_id).latest(EntryKind.ASSESSMENT.value)
    planned = plan_of(store, incident_id, latest, done) if latest is not None else None
    if planned is None:
        return []
    before, plan = planned
    if not plan.open_steps or not plan.open_steps[0].manual:
        return []
    return recovery_blocks.delta_blocks(delta(before, after), plan.open_steps[0], "",
                                        renderer_for(settings.templates_dir))


def _delta_blocks(settings: Settings, redis: Redis, keys: Keys, incident_id: str, after: Assessment, action_id: str,
                  done: dict[str, float]) -> list[Block]:
    link = text_fields(redis.hgetall(keys.recovery_step(action_id)))
    if not link.get("ref"):
        return []  # an undo: re-assessed, without a step to compare with
    store = IncidentStore(redis, keys)
    entry = _entry_with_ref(store, incident_id, link["ref"])
    planned = plan_of(store, incident_id, entry, done) if entry is not None else None
    if planned is None:
        return []
    before, plan = planned
    step = plan.step(int(link["number"]))
    if step is None:
        return []
    undo = text_fields(redis.hgetall(keys.recovery_undo(action_id)))
    change = delta(before, after)
    return recovery_blocks.delta_blocks(change, step, action_id, renderer_for(settings.templates_dir),
                                        undo=undo.get("description", ""), undo_note=undo.get("note", ""))


# -- the early look after a step ----------------------------------------------------------------------


@dataclass(frozen=True)
class EarlyLook:
    """Which checks run first after a step (those that decide its pattern), and how to show what they say."""

    step: PlanStep
    """The plan step the action ran (its pattern decides the checks; its number is shown)."""
    action_id: str
    checks: tuple[str, ...] = ()
    """The names of the checks to run first (:func:`incident.recovery.deciding_checks`)."""

    def blocks(self, settings: Settings, results: list[CheckResult]) -> list[Block]:
        early = early_delta(self.step.pattern, results)
        return recovery_blocks.early_delta_blocks(early, self.step.number, self.action_id,
                                                  renderer_for(settings.templates_dir))


def early_look(settings: Settings, redis: Redis | None, incident_id: str | None,
               after_action: str | None) -> EarlyLook | None:
    """The early look of the re-assessment after plan step ``after_action`` (``None``: an undo, or no step)."""
    if redis is None or not incident_id or not after_action:
        return None
    keys = get_keys(settings)
    link = text_fields(redis.hgetall(keys.recovery_step(after_action)))
    if not link.get("ref"):
        return None
    store = IncidentStore(redis, keys)
    entry = _entry_with_ref(store, incident_id, link["ref"])
    planned = plan_of(store, incident_id, entry, done_steps(redis, keys, incident_id)) if entry is not None else None
    step = planned[1].step(int(link["number"])) if planned is not None else None
    if step is None:
        return None
    return EarlyLook(step, after_action, deciding_checks(step.pattern))


# -- a click on a plan step --------------------------------------------------------------------------


def _channel_of(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")


def _incident_of(ctx: Context, body: dict[str, Any]) -> Incident:
    incident = ctx.store.find_by_channel(_channel_of(body))
    if incident is None:
        raise NotInIncidentChannel(ctx.refusal("recovery_outside_incident"))
    return incident


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)


def click_step(ctx: Context, body: dict[str, Any], user_id: str) -> Reply:
    """A click on a plan step: checked against the incident's latest assessment, then requested like any action."""
    actions = body.get("actions") or []
    button = StepButton.parse(str(actions[0].get("value") or "")) if actions else None
    if button is None:
        raise ConfirmationError(ctx.refusal("no_recovery_step"))
    authorize(ctx, user_id, "request")
    incident = _incident_of(ctx, body)
    timeline = ctx.store.timeline(incident.id)
    latest = timeline.latest(EntryKind.ASSESSMENT.value)
    if latest is None:
        return Reply(ctx.templates.render("recovery_stale.slack.j2", why="recording"))
    done = done_steps(ctx.redis, ctx.keys, incident.id)
    if ref_of(latest) != button.ref:
        if _entry_with_ref(ctx.store, incident.id, button.ref) is None:
            return Reply(ctx.templates.render("recovery_stale.slack.j2", why="recording"))
        _show_fresh_plan(ctx, incident, user_id, latest, done)
        return Reply("")
    finished = timeline.latest(EntryKind.ACTION.value)
    if finished is not None and _stream_id(finished.id) > _stream_id(latest.id):
        requested = timeline.latest(EntryKind.ASSESSMENT_REQUESTED.value)
        if requested is None or _stream_id(requested.id) < _stream_id(finished.id):
            text = ctx.templates.render("recovery_reassess.slack.j2", action=None, number=None, undo_of=None)
            queue_reassessment(ctx.settings, ctx.redis, incident.id, incident.channel_id,
                               ctx.slack.post_message(incident.channel_id, text), actor=user_id,
                               cluster=incident.cluster)
        return Reply(ctx.templates.render("recovery_stale.slack.j2", why="changed",
                                          change=str(finished.data.get("description", "an action"))))
    planned = plan_of(ctx.store, incident.id, latest, done)
    if planned is None:
        return Reply(ctx.templates.render("recovery_stale.slack.j2", why="recording"))
    plan = planned[1]
    step = plan_step(plan, button.number, button.kind, button.target, ctx.templates)
    primary = plan.primary is not None and plan.primary.number == step.number
    return _request_step(ctx, incident, user_id, button.ref, step, primary)


def _request_step(ctx: Context, incident: Incident, user_id: str, ref: str, step: PlanStep, primary: bool) -> Reply:
    def link(request: ActionRequest) -> None:
        key = ctx.keys.recovery_step(request.id)
        with ctx.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"ref": ref, "number": str(step.number), "incident_id": incident.id,
                                    "description": step.description})
            pipe.expire(key, RECORD_TTL_SECONDS)
            pipe.execute()

    return requested_reply(ctx, *submit_request(
        ctx, user_id, incident.channel_id, incident, step.kind, step.target, dict(step.params),
        origin={"plan_ref": ref, "plan_step": step.number, "plan_primary": primary}, before_prepare=link))


def _show_fresh_plan(ctx: Context, incident: Incident, user_id: str, latest: TimelineEntry,
                     done: dict[str, float]) -> None:
    """The stale click's answer: it says so, with the latest assessment's plan and its buttons."""
    text = ctx.templates.render("recovery_stale.slack.j2", why="newer")
    blocks: list[Block] = [recovery_blocks.note(text)]
    planned = plan_of(ctx.store, incident.id, latest, done)
    if planned is not None:
        assessment, plan = planned
        blocks.append(recovery_blocks.note(ctx.templates.render("recovery_fresh_plan.slack.j2",
                                                                headline=assessment.verdict.headline)))
        blocks += recovery_blocks.plan_blocks(plan, ctx.templates)
    ctx.slack.post_ephemeral(incident.channel_id, user_id, text, blocks)


# -- node restore -------------------------------------------------------------------------------------


def click_restore(ctx: Context, body: dict[str, Any], user_id: str) -> Reply:
    """*Re-apply labels and taints*: ``restore node`` with what the bot recorded when it deleted that node."""
    actions = body.get("actions") or []
    node, target = recovery_blocks.restore_target(str(actions[0].get("value") or "") if actions else "")
    authorize(ctx, user_id, "request")
    incident = _incident_of(ctx, body)
    record = node_restore.record_of(ctx.redis, ctx.settings, incident.id, node) if node else None
    if record is not None and target != node and record.get("replacement") != target:
        record = None  # a value naming a node nobody said replaces this one
    if record is None:
        raise ConfirmationError(ctx.refusal("nothing_to_restore"), hint=ctx.refusal("nothing_to_restore_hint"))
    params = node_restore.restore_request_params(record)
    return requested_reply(ctx, *submit_request(ctx, user_id, incident.channel_id, incident, "restore-node", target,
                                                params, origin={"restore_of": record.get("action_id")}))


def replacement_named(ctx: Context, incident: Incident, old: str, new: str, user_id: str) -> Reply:
    """``/k8s replaced node <old> by <new>``: watch for ``new`` and offer it ``old``'s labels and taints."""
    authorize(ctx, user_id, "request")
    node_restore.name_replacement(ctx.settings, ctx.redis, incident.id, old, new)
    return Reply(ctx.templates.render("node_replacement_reply.slack.j2", old=old, new=new))


# -- Undo ---------------------------------------------------------------------------------------------


def click_undo(ctx: Context, body: dict[str, Any], user_id: str) -> Reply:
    """A click on Undo: the recorded inverse of that action is requested (dry-run, confirmation, queue), once."""
    actions = body.get("actions") or []
    action_id = str(actions[0].get("value") or "") if actions else ""
    if not action_id:
        raise ConfirmationError(ctx.refusal("no_undo_action_id"))
    authorize(ctx, user_id, "request")
    incident = _incident_of(ctx, body)
    undo = undo_of(ctx.redis, ctx.keys, action_id)
    original = ctx.redis.hget(ctx.keys.action(action_id), "incident_id")
    if original is None or (original.decode() if isinstance(original, bytes) else str(original)) != incident.id:
        raise ConfirmationError(ctx.refusal("undo_of_other_incident"))
    if not undo.get("description"):
        raise IncidentBotError(ctx.templates.render("recovery_no_undo.slack.j2", action_id=action_id,
                                                    note=undo.get("note", "")))
    undo_key = ctx.keys.recovery_undo(action_id)
    replay = inbox.replaying() and ctx.redis.hget(undo_key, "undone_by") == user_id.encode()  # its first run claimed it
    if not replay and not ctx.redis.hsetnx(undo_key, "undone_by", user_id):
        raise ConfirmationError(ctx.refusal("already_undone", action_id=action_id),
                                hint=ctx.refusal("already_undone_hint"))
    def link(request: ActionRequest) -> None:  # an undo is a step too: re-assessed when it finished
        key = ctx.keys.recovery_step(request.id)
        with ctx.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"undo_of": action_id, "incident_id": incident.id})
            pipe.expire(key, RECORD_TTL_SECONDS)
            pipe.execute()

    try:
        request, _ = submit_request(ctx, user_id, incident.channel_id, incident, undo["kind"], undo["target"],
                                    json.loads(undo.get("params") or "{}"), origin={"undo_of": action_id},
                                    before_prepare=link)
    except Exception:
        ctx.redis.hdel(ctx.keys.recovery_undo(action_id), "undone_by")  # not requested: the button works again
        raise
    ctx.redis.hset(ctx.keys.recovery_undo(action_id), "undo_action", request.id)
    return Reply(ctx.templates.render("action_requested_reply.slack.j2", action=request))
