"""``/k8s`` risky actions from Slack: one command per action kind, ``queue``, ``cancel``, and the Confirm /
Cancel / Proceed-anyway buttons.

The commands are generated from the kinds' specs (:mod:`incident.action_kinds`): words, usage, help and
parser come from the spec, and one handler serves every kind, so a new kind needs nothing here. The bot
never talks to the cluster: a request is authorized, stored (``preparing``) and handed to a worker, which
validates, dry-runs and posts the confirmation message. A click on Confirm is authorized and recorded
atomically (``ActionStore.confirm``); the confirmed action joins the cluster's FIFO and a drain job is
queued. Only users in ``ACTION_ALLOWED_USERS`` or members of ``ACTION_ALLOWED_USERGROUPS`` may request or
confirm (nobody when both are empty).

Every call into the worker jobs and the incident timeline is one of the ``_queue_*`` / ``_record`` /
``_commander_of`` functions at the top: the seam to the service layer.
"""

from __future__ import annotations

import re
from typing import Any

from bot.after_ack import ButtonSpec, button_value, clicked_by
from bot.grammar import CommandSpec, Invocation, no_arguments
from service.lifecycle import Reply
from service.context import Context
from chat import action_blocks
from chat.action_blocks import ACTION_CANCEL, ACTION_CONFIRM, ACTION_PROCEED_ANYWAY
from incident.action_kinds import ActionSpec, ActionSpecs
from persistence.action_queue import ActionQueue
from incident.actions import ActionRequest, ActionStatus, ActionStore
from incident.errors import CommandError, IncidentNotFound, NotPermitted, SlackApiError
from incident.model import Incident

ACTION_ID = re.compile(r"^[aA](\d{1,12})$")
ALLOWED_CACHE_SECONDS = 60
NO_ACTION_ID = "This button carries no action id; it may come from an old message."

# --- the seam: worker jobs and the incident timeline ---------------------------------------------------


def _queue_prepare(services: Context, request: ActionRequest) -> None:
    """Validation + dry-run of a new request, in a worker."""
    from service.actions import enqueue_prepare

    enqueue_prepare(services.settings, request.id)


def _queue_drain(services: Context, cluster: str) -> None:
    """Run the cluster's confirmed actions, one at a time, in a worker."""
    from service.actions import enqueue_drain

    enqueue_drain(services.settings, cluster)


def _queue_positions_refresh(services: Context, cluster: str) -> None:
    """Rewrite the waiting actions' messages with their new positions, in a worker."""
    from service.actions import request_positions_refresh

    request_positions_refresh(services.settings, services.redis, cluster)


def _record(services: Context, incident_id: str | None, kind: str, user_id: str, data: dict[str, Any]) -> None:
    """An entry on the incident's timeline (none outside an incident)."""
    if incident_id:
        services.store.timeline(incident_id).append(kind, user_id, data, at=services.clock.now())


def _commander_of(services: Context, incident_id: str | None) -> str | None:
    if not incident_id:
        return None
    try:
        return services.store.get(incident_id).commander
    except IncidentNotFound:
        return None


# --- the commands -----------------------------------------------------------------------------------


def action_commands(kinds: ActionSpecs) -> tuple[CommandSpec, ...]:
    """One command per kind (in the kinds' order), then ``queue`` and ``cancel``."""
    return (
        *(_kind_command(kind) for kind in kinds),
        CommandSpec("queue", "queue", "the running risky action and the waiting ones, in order", no_arguments,
                    _run_queue),
        CommandSpec("cancel", "cancel <action-id>",
                    "cancel a risky action that has not started (its requester or the commander)", _parse_cancel,
                    _run_cancel),
    )


def _kind_command(kind: ActionSpec) -> CommandSpec:
    def parse(tokens: list[str], rest: str) -> dict[str, Any]:
        args = kind.parse(tokens)
        return {"target": args.target, "params": args.params}

    def handle(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
        args = inv.command.args
        return request_action(services, inv, incident, kind.kind, args["target"], args["params"])

    return CommandSpec(" ".join(kind.words), kind.usage, kind.help, parse, handle, needs_incident=True, risky=True)


def _parse_cancel(tokens: list[str], rest: str) -> dict[str, Any]:
    if len(tokens) != 1 or not ACTION_ID.match(tokens[0]):
        raise CommandError("Give one action id such as `A12` (see `/k8s queue`).")
    return {"action_id": tokens[0].upper()}


# --- who may act ------------------------------------------------------------------------------------


def is_allowed(services: Context, user_id: str) -> bool:
    """Listed in ``ACTION_ALLOWED_USERS`` or a member of one of ``ACTION_ALLOWED_USERGROUPS`` (cached 60 s)."""
    settings = services.settings
    if user_id in settings.action_allowed_users:
        return True
    if not settings.action_allowed_usergroups:
        return False
    key = services.keys.action_allowed_members()
    if not services.redis.exists(key):
        members: set[str] = set()
        for group in settings.action_allowed_usergroups:
            members |= set(services.slack.call("usergroups.users.list", usergroup=group).get("users", []))
        with services.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.sadd(key, "-", *sorted(members))  # "-" keeps an empty membership cached too
            pipe.expire(key, ALLOWED_CACHE_SECONDS)
            pipe.execute()
    return bool(services.redis.sismember(key, user_id))


def authorize(services: Context, user_id: str, verb: str) -> None:
    """Raise :class:`NotPermitted` unless ``user_id`` may ``verb`` risky actions."""
    if is_allowed(services, user_id):
        return
    if not services.settings.action_allowed_users and not services.settings.action_allowed_usergroups:
        raise NotPermitted("Nobody may run risky actions yet: no one is allowed in the configuration.",
                           hint="Set ACTION_ALLOWED_USERS (user IDs) and/or ACTION_ALLOWED_USERGROUPS.")
    raise NotPermitted(f"<@{user_id}> may not {verb} risky actions; nothing was changed.",
                       hint="Ask someone listed in ACTION_ALLOWED_USERS or in ACTION_ALLOWED_USERGROUPS.")


# --- handlers ---------------------------------------------------------------------------------------


def _store(services: Context) -> ActionStore:
    return ActionStore(services.redis, services.keys, services.clock)


def _queue(services: Context, cluster: str) -> ActionQueue:
    return ActionQueue(services.redis, cluster, services.keys, services.clock)


def request_action(services: Context, inv: Invocation, incident: Incident | None, kind: str,
                   target: str, params: dict[str, Any]) -> Reply:
    """Authorize, store the request and queue its validation + dry-run."""
    authorize(services, inv.user_id, "request")
    settings = services.settings
    request = _store(services).new(
        cluster=settings.cluster_name, kind=kind, target=target, requested_by=inv.user_id,
        channel_id=incident.channel_id if incident else inv.channel_id, incident_id=incident.id if incident else None,
        params=params, second_confirmer_for_destructive=settings.second_confirmer_for_destructive)
    _queue_prepare(services, request)
    _record(services, request.incident_id, "action_requested", inv.user_id,
            {"action_id": request.id, "description": request.description})
    return Reply(services.templates.render("action_requested_reply.slack.j2", action=request))


def _run_queue(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    cluster = services.settings.cluster_name
    store = _store(services)
    rows = [(position, request) for position, action_id in enumerate(_queue(services, cluster).ids(), start=1)
            if (request := store.find(action_id)) is not None]
    return Reply(action_blocks.queue_listing(cluster, rows, services.templates))


def _run_cancel(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    return cancel_action(services, inv.command.args["action_id"], inv.user_id)


def _show(services: Context, request: ActionRequest, position: int | None = None) -> None:
    """Rewrite the confirmation message for the request's current state (best effort)."""
    if not request.message_ts:
        return
    if request.status == ActionStatus.AWAITING_CONFIRMATION:
        text, blocks = action_blocks.confirmation(request, services.templates, services.clock.now())
    else:
        text, blocks = action_blocks.state(request, services.templates, position)
    try:
        services.slack.update_message(request.channel_id, request.message_ts, text, blocks)
    except SlackApiError:
        pass  # the state is in Redis; the next change rewrites the message


def confirm_action(services: Context, action_id: str, user_id: str, *, proceed_anyway: bool = False) -> Reply:
    """A click on Confirm (or Proceed anyway): authorize, confirm atomically, queue the drain."""
    authorize(services, user_id, "confirm")
    result = _store(services).confirm(action_id, user_id, proceed_anyway=proceed_anyway)
    request = result.request
    _record(services, request.incident_id, "action_confirmed", user_id, {
        "action_id": request.id, "description": request.description, "queued": result.queued,
        "proceed_anyway": proceed_anyway and bool(request.guard)})
    if not result.queued:
        _show(services, request)
        return Reply(services.templates.render("action_confirmed_reply.slack.j2", action=request, queued=False,
                                               missing=request.confirmers_needed - len(request.confirmed_by)))
    _show(services, request, result.position)
    _queue_drain(services, request.cluster)
    latest = _store(services).get(action_id)
    if latest.status != ActionStatus.QUEUED:
        _show(services, latest)  # the drainer moved faster than our message update
    return Reply(services.templates.render("action_confirmed_reply.slack.j2", action=request, queued=True,
                                           ahead=(result.position or 1) - 1))


def cancel_action(services: Context, action_id: str, user_id: str) -> Reply:
    """Cancel a request not yet running: its requester or the incident commander."""
    store = _store(services)
    request = store.get(action_id)
    was_queued = request.status == ActionStatus.QUEUED
    _queue(services, request.cluster).cancel(request, user_id, commander=_commander_of(services, request.incident_id))
    request = store.get(action_id)
    _record(services, request.incident_id, "action_cancelled", user_id,
            {"action_id": request.id, "description": request.description})
    _show(services, request)
    if was_queued:
        _queue_positions_refresh(services, request.cluster)
    return Reply(services.templates.render("action_cancelled_reply.slack.j2", action=request))


# --- buttons ----------------------------------------------------------------------------------------


def _on_confirm(services: Context, body: dict[str, Any]) -> Reply:
    return confirm_action(services, button_value(body, NO_ACTION_ID), clicked_by(body))


def _on_proceed_anyway(services: Context, body: dict[str, Any]) -> Reply:
    return confirm_action(services, button_value(body, NO_ACTION_ID), clicked_by(body), proceed_anyway=True)


def _on_cancel(services: Context, body: dict[str, Any]) -> Reply:
    return cancel_action(services, button_value(body, NO_ACTION_ID), clicked_by(body))


def action_buttons() -> tuple[ButtonSpec, ...]:
    """The Confirm, Proceed anyway and Cancel buttons of confirmation messages."""
    return (ButtonSpec(ACTION_CONFIRM, _on_confirm), ButtonSpec(ACTION_PROCEED_ANYWAY, _on_proceed_anyway),
            ButtonSpec(ACTION_CANCEL, _on_cancel))
