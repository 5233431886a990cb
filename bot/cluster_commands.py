"""``/k8s`` commands of many clusters: ``bind cluster``, ``unbind cluster``, ``clusters``, and the ``--cluster`` option.

The option is read by :func:`take_cluster_option` wherever a command may name a cluster (``incident open``,
``assess``, ``queue``). It checks the name's *syntax* only (:func:`incident.clusters.valid_name`, so shell and
mention characters never get further than the parser); whether the cluster exists and whether this
channel may act on it is :func:`service.fleet.cluster_for`'s answer. Every handler is one call into
:mod:`service.fleet`.
"""

from __future__ import annotations

from typing import Any

from bot.grammar import CommandSpec, Invocation, no_arguments, rest_after
from incident.clusters import ALL, NAME_RULE, valid_name
from incident.command_errors import command_error
from incident.kube_syntax import cut
from incident.model import Incident
from service import fleet
from service.context import Context
from service.lifecycle import Reply

OPTION = "--cluster"


def check_cluster_name(token: str, *, allow_all: bool = False) -> str:
    """A cluster name as typed; :class:`CommandError` naming the rule otherwise."""
    name = token.strip()
    if allow_all and name.lower() == ALL:
        return ALL
    if not valid_name(name):
        raise command_error("not_a_cluster", got=cut(name, 40), rule=NAME_RULE)
    return name


def take_cluster_option(tokens: list[str], rest: str, *, allow_all: bool = False) -> tuple[str | None, list[str], str]:
    """Remove a leading ``--cluster <name>`` (or ``--cluster=<name>``); returns ``(name or None, tokens, rest)``."""
    if not tokens:
        return None, tokens, rest
    first = tokens[0]
    if first.lower().startswith(OPTION + "="):
        return check_cluster_name(first.split("=", 1)[1], allow_all=allow_all), tokens[1:], rest_after(rest, 1)
    if first.lower() == OPTION:
        if len(tokens) < 2:
            raise command_error("cluster_missing")
        return check_cluster_name(tokens[1], allow_all=allow_all), tokens[2:], rest_after(rest, 2)
    return None, tokens, rest


def _parse_bind(tokens: list[str], rest: str) -> dict[str, Any]:
    if len(tokens) != 1:
        raise command_error("one_cluster")
    return {"cluster": check_cluster_name(tokens[0])}


def _run_bind(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    return fleet.bind(services, inv.channel_id, incident, inv.command.args["cluster"], inv.user_id)


def _run_unbind(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    return fleet.unbind(services, inv.channel_id, inv.user_id)


def _run_clusters(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    return fleet.clusters_listing(services, inv.channel_id)


def cluster_commands() -> tuple[CommandSpec, ...]:
    """The fleet's commands, in help order."""
    return (
        CommandSpec("clusters", "clusters", "every cluster: mode, agent heartbeat, last verdict, running action",
                    no_arguments, _run_clusters),
        CommandSpec("bind cluster", "bind cluster <name>",
                    "scope this channel to one cluster: its commands act there only", _parse_bind, _run_bind),
        CommandSpec("unbind cluster", "unbind cluster", "remove this channel's cluster binding", no_arguments,
                    _run_unbind),
    )
