"""Risky action requests from people (service layer): who may act, request, confirm, cancel, the queue listing.

The Slack surface (``bot.action_commands``) parses and hands over; this module authorizes, stores the
request (``preparing``) and queues its validation + dry-run (:func:`service.actions.enqueue_prepare`).
A confirm click is authorized and recorded atomically (``ActionStore.confirm``); the confirmed action
joins the cluster's FIFO and a drain job is queued. Only users in ``ACTION_ALLOWED_USERS`` or members of
``ACTION_ALLOWED_USERGROUPS`` may request or confirm (nobody when both are empty). Every step a person
takes is on the incident's timeline (``action_requested``, ``action_confirmed``, ``action_cancelled``);
the confirmation message is rewritten as the request moves. Replies come from ``templates/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat import action_blocks
from incident.actions import ActionRequest, ActionStatus
from incident.errors import ConfirmationError, IncidentNotFound, NotPermitted, SlackApiError
from incident.model import Incident
from incident.timeline import EntryKind
from persistence.action_queue import ActionQueue
from persistence.action_store import ActionStore, Confirmation
from service.actions import enqueue_drain, enqueue_prepare, request_positions_refresh
from incident.clusters import load_registry
from service import fleet, inbox
from service.cluster_jobs import cluster_settings_context
from service.context import Context
from service.lifecycle import Reply
from service.outbox import real_ts

ALLOWED_CACHE_SECONDS = 60


def _record(ctx: Context, incident_id: str | None, kind: EntryKind, user_id: str, data: dict[str, Any]) -> None:
    """An entry on the incident's timeline (none outside an incident); once per inbox effect when replayed."""
    dedupe = inbox.effect_id(f"timeline:{kind.value}")
    if incident_id:
        ctx.store.timeline(incident_id).append(kind, user_id, data, at=ctx.clock.now(), dedupe=dedupe)


def _commander_of(ctx: Context, incident_id: str | None) -> str | None:
    if not incident_id:
        return None
    try:
        return ctx.store.get(incident_id).commander
    except IncidentNotFound:
        return None


def is_allowed(ctx: Context, user_id: str) -> bool:
    """Listed in ``ACTION_ALLOWED_USERS`` or a member of one of ``ACTION_ALLOWED_USERGROUPS`` (cached 60 s)."""
    settings = ctx.settings
    if user_id in settings.action_allowed_users:
        return True
    if not settings.action_allowed_usergroups:
        return False
    key = ctx.keys.action_allowed_members() if load_registry(settings).implicit else \
        ctx.keys.action_allowed_members_of(settings.cluster_name)
    if not ctx.redis.exists(key):
        members: set[str] = set()
        for group in settings.action_allowed_usergroups:
            members |= set(ctx.slack.call("usergroups.users.list", usergroup=group).get("users", []))
        with ctx.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.sadd(key, "-", *sorted(members))  # "-" keeps an empty membership cached too
            pipe.expire(key, ALLOWED_CACHE_SECONDS)
            pipe.execute()
    return bool(ctx.redis.sismember(key, user_id))


def authorize(ctx: Context, user_id: str, verb: str) -> None:
    """Raise :class:`NotPermitted` unless ``user_id`` may ``verb`` risky actions."""
    if is_allowed(ctx, user_id):
        return
    if not ctx.settings.action_allowed_users and not ctx.settings.action_allowed_usergroups:
        raise NotPermitted(ctx.refusal("nobody_allowed"), hint=ctx.refusal("nobody_allowed_hint"))
    raise NotPermitted(ctx.refusal("not_allowed", user=user_id, verb=verb), hint=ctx.refusal("not_allowed_hint"))


def _store(ctx: Context) -> ActionStore:
    return ActionStore(ctx.redis, ctx.keys, ctx.clock)


def _queue(ctx: Context, cluster: str) -> ActionQueue:
    return ActionQueue(ctx.redis, cluster, ctx.keys, ctx.clock)


def request_action(ctx: Context, user_id: str, channel_id: str, incident: Incident | None, kind: str,
                   target: str, params: dict[str, Any]) -> Reply:
    """Authorize, store the request and queue its validation + dry-run."""
    return requested_reply(ctx, *submit_request(ctx, user_id, channel_id, incident, kind, target, params))


def requested_reply(ctx: Context, request: ActionRequest, created: bool) -> Reply:
    """The answer to a request: checking it now, or (a replay) that this click or command already asked."""
    template = "action_requested_reply.slack.j2" if created else "action_replayed_reply.slack.j2"
    return Reply(ctx.templates.render(template, action=request))


def submit_request(ctx: Context, user_id: str, channel_id: str, incident: Incident | None, kind: str,
                   target: str, params: dict[str, Any], *, origin: dict[str, Any] | None = None,
                   before_prepare: Callable[[ActionRequest], None] | None = None) -> tuple[ActionRequest, bool]:
    """:func:`request_action`'s work, returning the stored request and whether it is new; ``origin`` (a plan
    step, an undo) goes on the ``action_requested`` entry, and ``before_prepare`` runs before the dry-run is
    queued (to link the request; it must be idempotent).

    Authorized on the cluster of the incident or the channel; an agent cluster whose agent is not seen is
    answered at once (:func:`service.fleet.require_reachable`). The work of an acknowledged command or click
    (``service.inbox``) stores one request however often it is replayed: a replay finds its first run's
    request, queues its dry-run only if the first run did not, and records it once.
    """
    cluster = fleet.cluster_for(ctx, channel_id, incident)
    authorize(cluster_settings_context(ctx, cluster.name), user_id, "request")
    fleet.require_reachable(ctx, cluster)
    settings = ctx.settings
    fields: dict[str, Any] = dict(
        cluster=cluster.name, kind=kind, target=target, requested_by=user_id,
        channel_id=incident.channel_id if incident else channel_id, incident_id=incident.id if incident else None,
        params=params, second_confirmer_for_destructive=settings.second_confirmer_for_destructive)
    effect = inbox.effect_id("action-request")
    if effect is None:
        request, created = _store(ctx).new(**fields), True
    else:
        request, created = _store(ctx).new_once(effect, **fields)
    if before_prepare is not None:
        before_prepare(request)
    job_id, queued = inbox.job_once(ctx.redis)
    if created or (request.status == ActionStatus.PREPARING and not queued):
        enqueue_prepare(settings, request.id, cluster=cluster.name, job_id=job_id)
    _record(ctx, request.incident_id, EntryKind.ACTION_REQUESTED, user_id,
            {"action_id": request.id, "description": request.description, **(origin or {})})
    return request, created


def queue_listing(ctx: Context, clusters: list[str] | None = None) -> Reply:
    """Each cluster's running action and the waiting ones, in order (``clusters``: these; default every one)."""
    store = _store(ctx)
    listings = []
    for cluster in clusters or list(load_registry(ctx.settings).names):
        rows = [(position, request) for position, action_id in enumerate(_queue(ctx, cluster).ids(), start=1)
                if (request := store.find(action_id)) is not None]
        listings.append(action_blocks.queue_listing(cluster, rows, ctx.templates))
    return Reply("\n\n".join(listings))


def _show(ctx: Context, request: ActionRequest, position: int | None = None) -> None:
    """Rewrite the confirmation message for the request's current state (best effort)."""
    if not request.message_ts:
        return
    if request.status == ActionStatus.AWAITING_CONFIRMATION:
        text, blocks = action_blocks.confirmation(request, ctx.templates, ctx.clock.now())
    else:
        text, blocks = action_blocks.state(request, ctx.templates, position)
    ts = real_ts(ctx.redis, ctx.keys, request.message_ts)  # an agent's message: the ts its post got
    if ts is None:
        return
    try:
        ctx.slack.update_message(request.channel_id, ts, text, blocks)
    except SlackApiError:
        pass  # the state is in Redis; the next change rewrites the message


def confirm_action(ctx: Context, action_id: str, user_id: str, *, proceed_anyway: bool = False,
                   channel_id: str | None = None) -> Reply:
    """A click on Confirm (or Proceed anyway): authorize, confirm atomically, queue the drain.

    Authorized against the action's cluster's allowlists; a click in a channel of another cluster (a forged
    button) and an agent cluster whose agent is not seen are refused before anything changes (the
    confirmation then expires normally).
    """
    pending = _store(ctx).get(action_id)
    if channel_id is not None:
        fleet.check_action_channel(ctx, channel_id, action_id, pending.cluster)
    authorize(cluster_settings_context(ctx, pending.cluster), user_id, "confirm")
    fleet.require_reachable(ctx, load_registry(ctx.settings).get(pending.cluster))
    try:
        result = _store(ctx).confirm(action_id, user_id, proceed_anyway=proceed_anyway)
    except ConfirmationError:
        replayed = _replayed_confirmation(ctx, action_id, user_id)
        if replayed is None:
            raise
        result = replayed
    request = result.request
    _record(ctx, request.incident_id, EntryKind.ACTION_CONFIRMED, user_id, {
        "action_id": request.id, "description": request.description, "queued": result.queued,
        "proceed_anyway": proceed_anyway and bool(request.guard)})
    if not result.queued:
        _show(ctx, request)
        return Reply(ctx.templates.render("action_confirmed_reply.slack.j2", action=request, queued=False,
                                          missing=request.confirmers_needed - len(request.confirmed_by)))
    _show(ctx, request, result.position)
    enqueue_drain(ctx.settings, request.cluster)
    latest = _store(ctx).get(action_id)
    if latest.status != ActionStatus.QUEUED:
        _show(ctx, latest)  # the drainer moved faster than our message update
    return Reply(ctx.templates.render("action_confirmed_reply.slack.j2", action=request, queued=True,
                                      ahead=(result.position or 1) - 1))


def _replayed_confirmation(ctx: Context, action_id: str, user_id: str) -> Confirmation | None:
    """A replayed Confirm click (``service.inbox``) whose first run confirmed before the process died: that
    confirmation, so the replay finishes its work (records it once, queues the drain, answers) instead of
    refusing the click it had accepted. ``None`` for anything else (the refusal stands)."""
    if not inbox.replaying():
        return None
    request = _store(ctx).get(action_id)
    if user_id not in request.confirmed_by:
        return None
    if request.status == ActionStatus.AWAITING_CONFIRMATION:
        return Confirmation(request, queued=False)
    if request.status == ActionStatus.QUEUED:
        ids = _queue(ctx, request.cluster).ids()
        return Confirmation(request, queued=True, position=ids.index(request.id) + 1 if request.id in ids else None)
    return Confirmation(request, queued=request.status in (ActionStatus.RUNNING, ActionStatus.SUCCEEDED,
                                                           ActionStatus.FAILED, ActionStatus.OUTCOME_UNKNOWN))


def cancel_action(ctx: Context, action_id: str, user_id: str) -> Reply:
    """Cancel a request not yet running: its requester or the incident commander."""
    store = _store(ctx)
    request = store.get(action_id)
    was_queued = request.status == ActionStatus.QUEUED
    _queue(ctx, request.cluster).cancel(request, user_id, commander=_commander_of(ctx, request.incident_id))
    request = store.get(action_id)
    _record(ctx, request.incident_id, EntryKind.ACTION_CANCELLED, user_id,
            {"action_id": request.id, "description": request.description})
    _show(ctx, request)
    if was_queued:
        request_positions_refresh(ctx.settings, ctx.redis, request.cluster)
    return Reply(ctx.templates.render("action_cancelled_reply.slack.j2", action=request))
