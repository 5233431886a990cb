"""``/k8s`` risky actions from Slack: one command per action kind, ``queue``, ``cancel``, and the Confirm /
Cancel / Proceed-anyway buttons.

The commands are generated from the kinds' specs (:mod:`incident.action_kinds`): words, usage, help and
parser come from the spec, and one handler serves every kind, so a new kind needs nothing here. The bot
never talks to the cluster, and stores nothing itself: every handler is one call into
:mod:`service.action_requests` (authorize, store, queue the dry-run; confirm; cancel; list the queue).
"""

from __future__ import annotations

import re
from typing import Any

from bot.after_ack import ButtonSpec, button_value, clicked_by
from bot.grammar import CommandSpec, Invocation, no_arguments
from chat.action_blocks import ACTION_CANCEL, ACTION_CONFIRM, ACTION_PROCEED_ANYWAY
from incident.action_kinds import ActionSpec, ActionSpecs
from incident.command_errors import command_error
from incident.model import Incident
from service import action_requests, fleet
from service.context import Context
from service.lifecycle import Reply

ACTION_ID = re.compile(r"^[aA](\d{1,12})$")


def action_commands(kinds: ActionSpecs) -> tuple[CommandSpec, ...]:
    """One command per kind (in the kinds' order), then ``queue`` and ``cancel``."""
    return (
        *(_kind_command(kind) for kind in kinds),
        CommandSpec("queue", "queue [--cluster <name>]",
                    "each cluster's running risky action and the waiting ones, in order", _parse_queue, _run_queue),
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
        return action_requests.request_action(services, inv.user_id, inv.channel_id, incident, kind.kind,
                                              args["target"], args["params"])

    return CommandSpec(" ".join(kind.words), kind.usage, kind.help, parse, handle, needs_incident=True, risky=True)


def _parse_cancel(tokens: list[str], rest: str) -> dict[str, Any]:
    if len(tokens) != 1 or not ACTION_ID.match(tokens[0]):
        raise command_error("action_id_arguments")
    return {"action_id": tokens[0].upper()}


def _run_queue(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    named = inv.command.args.get("cluster")
    bound = incident is not None or services_bound(services, inv.channel_id)
    if named is None and not bound:
        return action_requests.queue_listing(services)  # every cluster's queue
    return action_requests.queue_listing(services, [fleet.cluster_for(services, inv.channel_id, incident, named).name])


def services_bound(services: Context, channel_id: str) -> bool:
    return fleet.fleet_store(services).bound(channel_id) is not None


def _parse_queue(tokens: list[str], rest: str) -> dict[str, Any]:
    from bot.cluster_commands import take_cluster_option

    cluster, tokens, rest = take_cluster_option(tokens, rest)
    no_arguments(tokens, rest)
    return {"cluster": cluster} if cluster else {}


def _run_cancel(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    return action_requests.cancel_action(services, inv.command.args["action_id"], inv.user_id)


def _clicked_in(body: dict[str, Any]) -> str | None:
    channel = body.get("channel")
    return str(channel["id"]) if isinstance(channel, dict) and channel.get("id") else None


def _on_confirm(services: Context, body: dict[str, Any]) -> Reply:
    return action_requests.confirm_action(services, button_value(services, body, "no_action_id"), clicked_by(body),
                                          channel_id=_clicked_in(body))


def _on_proceed_anyway(services: Context, body: dict[str, Any]) -> Reply:
    return action_requests.confirm_action(services, button_value(services, body, "no_action_id"), clicked_by(body),
                                          proceed_anyway=True, channel_id=_clicked_in(body))


def _on_cancel(services: Context, body: dict[str, Any]) -> Reply:
    return action_requests.cancel_action(services, button_value(services, body, "no_action_id"), clicked_by(body))


def action_buttons() -> tuple[ButtonSpec, ...]:
    """The Confirm, Proceed anyway and Cancel buttons of confirmation messages."""
    return (ButtonSpec(ACTION_CONFIRM, _on_confirm), ButtonSpec(ACTION_PROCEED_ANYWAY, _on_proceed_anyway),
            ButtonSpec(ACTION_CANCEL, _on_cancel))
