"""``/k8s`` risky actions from Slack: the grammar, the handlers, and the Confirm / Cancel / Proceed-anyway buttons.

The bot never talks to the cluster here: a request is authorized, stored (``preparing``) and handed
to ``workers.actions.prepare_action``, which validates, dry-runs and posts the confirmation message.
A click on Confirm is authorized and recorded atomically (``ActionStore.confirm``); the confirmed
action joins the cluster's FIFO and a drain job is queued. Only users in ``ACTION_ALLOWED_USERS`` or
members of ``ACTION_ALLOWED_USERGROUPS`` may request or confirm (nobody when both are empty).

Wired in by ``bot.grammar.build_registry`` (:func:`register_action_commands`) and
``bot.app.create_app`` (:func:`register_action_listeners`).
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.commands import Invocation, handles
from bot.grammar import CommandRegistry, _shorten, no_arguments
from service.lifecycle import Reply
from service.context import Context
from chat import action_blocks
from chat.action_blocks import ACTION_CANCEL, ACTION_CONFIRM, ACTION_PROCEED_ANYWAY
from persistence.action_queue import ActionQueue
from incident.actions import (
    DEFAULT_DRAIN_TIMEOUT,
    MAX_DRAIN_TIMEOUT,
    MAX_REPLICAS,
    WORKLOAD_KINDS,
    ActionKind,
    ActionRequest,
    ActionStatus,
    ActionStore,
    check_name,
    parse_namespaced,
)
from incident.errors import CommandError, IncidentBotError, IncidentNotFound, NotPermitted, SlackApiError
from incident.model import Incident

ACTION_ID = re.compile(r"^[aA](\d{1,12})$")
ALLOWED_CACHE_SECONDS = 60

# --- grammar ----------------------------------------------------------------------------------------


def _one_node(tokens: list[str]) -> str:
    if len(tokens) != 1:
        raise CommandError("Give exactly one node name.")
    return check_name(tokens[0], "node")


def _seconds(flag: str, value: str, maximum: int) -> int:
    if not value.isdigit() or int(value) > maximum:
        raise CommandError(f"`{flag}` takes whole seconds from 0 to {maximum} (got `{_shorten(value)}`).")
    return int(value)


def register_action_commands(registry: CommandRegistry) -> None:
    """Declare the risky-action commands (usage and help go to ``/k8s help``)."""

    @registry.command("cordon node", usage="cordon node <name>", help="mark a node unschedulable (confirm first)",
                      needs_incident=True, risky=True)
    def _cordon(tokens: list[str], rest: str) -> dict[str, Any]:
        return {"node": _one_node(tokens)}

    @registry.command("uncordon node", usage="uncordon node <name>", help="make a node schedulable again (confirm first)",
                      needs_incident=True, risky=True)
    def _uncordon(tokens: list[str], rest: str) -> dict[str, Any]:
        return {"node": _one_node(tokens)}

    @registry.command("drain node", usage="drain node <name> [--grace N] [--timeout N]",
                      help="cordon and evict a node's pods, respecting PodDisruptionBudgets (confirm first)",
                      needs_incident=True, risky=True)
    def _drain(tokens: list[str], rest: str) -> dict[str, Any]:
        if not tokens:
            raise CommandError("Give the node name.")
        args: dict[str, Any] = {"node": check_name(tokens[0], "node"), "grace": None,
                                "timeout": DEFAULT_DRAIN_TIMEOUT}
        options = tokens[1:]
        for index in range(0, len(options), 2):
            flag = options[index].lower()
            if flag not in ("--grace", "--timeout"):
                raise CommandError(f"Unknown option `{_shorten(options[index])}`; use --grace or --timeout.")
            if index + 1 >= len(options):
                raise CommandError(f"`{flag}` needs a number of seconds.")
            if flag == "--grace":
                args["grace"] = _seconds(flag, options[index + 1], 3600)
            else:
                args["timeout"] = max(1, _seconds(flag, options[index + 1], MAX_DRAIN_TIMEOUT))
        return args

    @registry.command("delete node", usage="delete node <name>",
                      help="remove a node from the cluster — the runbook's isolation step (confirm first)",
                      needs_incident=True, risky=True)
    def _delete_node(tokens: list[str], rest: str) -> dict[str, Any]:
        return {"node": _one_node(tokens)}

    @registry.command("restart", usage="restart deployment|daemonset|statefulset <namespace>/<name>",
                      help="rollout restart a workload (confirm first)", needs_incident=True, risky=True)
    def _restart(tokens: list[str], rest: str) -> dict[str, Any]:
        if len(tokens) != 2 or tokens[0].lower() not in WORKLOAD_KINDS:
            raise CommandError("Give the workload kind (deployment, daemonset or statefulset) and <namespace>/<name>.")
        return {"workload": tokens[0].lower(), "target": parse_namespaced(tokens[1], tokens[0].lower())}

    @registry.command("scale deployment", usage="scale deployment <namespace>/<name> <replicas>",
                      help="set a Deployment's replicas (confirm first)", needs_incident=True, risky=True)
    def _scale(tokens: list[str], rest: str) -> dict[str, Any]:
        if len(tokens) != 2:
            raise CommandError("Give <namespace>/<name> and the number of replicas.")
        if not tokens[1].isdigit() or int(tokens[1]) > MAX_REPLICAS:
            raise CommandError(f"Replicas must be a whole number from 0 to {MAX_REPLICAS} (got `{_shorten(tokens[1])}`).")
        return {"target": parse_namespaced(tokens[0], "deployment"), "replicas": int(tokens[1])}

    @registry.command("delete pod", usage="delete pod <namespace>/<name>", help="delete one pod (confirm first)",
                      needs_incident=True, risky=True)
    def _delete_pod(tokens: list[str], rest: str) -> dict[str, Any]:
        if len(tokens) != 1:
            raise CommandError("Give exactly one pod as <namespace>/<name>.")
        return {"target": parse_namespaced(tokens[0], "pod")}

    @registry.command("queue", usage="queue", help="the running risky action and the waiting ones, in order")
    def _queue(tokens: list[str], rest: str) -> dict[str, Any]:
        return no_arguments(tokens, rest)

    @registry.command("cancel", usage="cancel <action-id>",
                      help="cancel a risky action that has not started (its requester or the commander)")
    def _cancel(tokens: list[str], rest: str) -> dict[str, Any]:
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


def request_action(services: Context, inv: Invocation, incident: Incident | None, kind: ActionKind,
                   target: str, params: dict[str, Any]) -> Reply:
    """Authorize, store the request and queue its validation + dry-run."""
    from service.actions import enqueue_prepare

    authorize(services, inv.user_id, "request")
    settings = services.settings
    request = _store(services).new(
        cluster=settings.cluster_name, kind=kind, target=target, requested_by=inv.user_id,
        channel_id=incident.channel_id if incident else inv.channel_id, incident_id=incident.id if incident else None,
        params=params, second_confirmer_for_destructive=settings.second_confirmer_for_destructive)
    enqueue_prepare(settings, request.id)
    if incident is not None:
        services.store.timeline(incident.id).append("action_requested", inv.user_id, {
            "action_id": request.id, "description": request.description}, at=services.clock.now())
    return Reply(f"Checking `{request.description}` against cluster *{request.cluster}* (action `{request.id}`): "
                 "the dry-run and the Confirm button will appear in this channel.")


def _node_handler(kind: ActionKind) -> Any:
    def handler(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
        args = inv.command.args
        params = {name: args[name] for name in ("grace", "timeout") if name in args}
        return request_action(services, inv, incident, kind, args["node"], params)

    return handler


handles("cordon node")(_node_handler(ActionKind.CORDON))
handles("uncordon node")(_node_handler(ActionKind.UNCORDON))
handles("drain node")(_node_handler(ActionKind.DRAIN))
handles("delete node")(_node_handler(ActionKind.DELETE_NODE))


@handles("restart")
def _restart(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    args = inv.command.args
    return request_action(services, inv, incident, ActionKind.RESTART, args["target"], {"workload": args["workload"]})


@handles("scale deployment")
def _scale(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    args = inv.command.args
    return request_action(services, inv, incident, ActionKind.SCALE, args["target"],
                          {"workload": "deployment", "replicas": args["replicas"]})


@handles("delete pod")
def _delete_pod(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    return request_action(services, inv, incident, ActionKind.DELETE_POD, inv.command.args["target"], {})


@handles("queue")
def _show_queue(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    cluster = services.settings.cluster_name
    store = _store(services)
    rows = [(position, request) for position, action_id in enumerate(_queue(services, cluster).ids(), start=1)
            if (request := store.find(action_id)) is not None]
    return Reply(action_blocks.queue_listing(cluster, rows, services.templates))


@handles("cancel")
def _cancel(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    return cancel_action(services, inv.command.args["action_id"], inv.user_id)


# --- buttons ----------------------------------------------------------------------------------------


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
    from service.actions import enqueue_drain

    authorize(services, user_id, "confirm")
    result = _store(services).confirm(action_id, user_id, proceed_anyway=proceed_anyway)
    request = result.request
    if request.incident_id:
        services.store.timeline(request.incident_id).append("action_confirmed", user_id, {
            "action_id": request.id, "description": request.description, "queued": result.queued,
            "proceed_anyway": proceed_anyway and bool(request.guard)}, at=services.clock.now())
    if not result.queued:
        _show(services, request)
        missing = request.confirmers_needed - len(request.confirmed_by)
        return Reply(f"Confirmed. `{request.description}` is destructive: {missing} more person(s) must confirm.")
    _show(services, request, result.position)
    enqueue_drain(services.settings, request.cluster)
    latest = _store(services).get(action_id)
    if latest.status != ActionStatus.QUEUED:
        _show(services, latest)  # the drainer moved faster than our message update
    ahead = (result.position or 1) - 1
    where = "it runs next" if ahead == 0 else f"{ahead} action(s) ahead of it"
    return Reply(f"Confirmed: `{request.description}` is queued on *{request.cluster}* ({where}).")


def cancel_action(services: Context, action_id: str, user_id: str) -> Reply:
    """Cancel a request not yet running: its requester or the incident commander."""
    from service.actions import request_positions_refresh

    store = _store(services)
    request = store.get(action_id)
    commander = None
    if request.incident_id:
        try:
            commander = services.store.get(request.incident_id).commander
        except IncidentNotFound:
            commander = None
    was_queued = request.status == ActionStatus.QUEUED
    _queue(services, request.cluster).cancel(request, user_id, commander=commander)
    request = store.get(action_id)
    if request.incident_id:
        services.store.timeline(request.incident_id).append("action_cancelled", user_id, {
            "action_id": request.id, "description": request.description}, at=services.clock.now())
    _show(services, request)
    if was_queued:
        request_positions_refresh(services.settings, services.redis, request.cluster)
    return Reply(f"Cancelled action `{request.id}` (`{request.description}`); nothing was changed.")


def _button_value(body: dict[str, Any]) -> str:
    actions = body.get("actions") or []
    if not actions or not actions[0].get("value"):
        raise IncidentBotError("This button carries no action id; it may come from an old message.")
    return str(actions[0]["value"])


def register_action_listeners(app: App, services: Context) -> None:
    """The Confirm, Proceed anyway and Cancel buttons of confirmation messages."""
    from bot.app import _guarded, _user

    @app.action(ACTION_CONFIRM)
    def on_confirm(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        _guarded(respond, lambda: confirm_action(services, _button_value(body), _user(body)).text)

    @app.action(ACTION_PROCEED_ANYWAY)
    def on_proceed_anyway(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        _guarded(respond, lambda: confirm_action(services, _button_value(body), _user(body), proceed_anyway=True).text)

    @app.action(ACTION_CANCEL)
    def on_cancel(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        _guarded(respond, lambda: cancel_action(services, _button_value(body), _user(body)).text)
