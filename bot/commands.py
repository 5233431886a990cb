"""The bot's ``/k8s`` commands, each a :class:`bot.grammar.CommandSpec` carrying its parser and its handler.

:func:`build_registry` assembles the registry the app serves: ``help`` (generated from the registry
itself), the incident commands below, and the risky-action commands of ``bot.action_commands`` (one per
kind of :mod:`incident.action_kinds`, plus ``queue`` and ``cancel``). A test checks that every spec has a
handler and every handler a spec, so help never lists something that does not work.

The incident header's buttons (:func:`incident_buttons`) and the status-update modal live here too. The
handlers are this module's only calls into the service layer (``service.lifecycle``, ``service.escalation``,
``service.assessment``, ``service.fleet`` for the cluster a command or a header button acts on): the ``_run_*`` and ``_on_*`` functions and :func:`submit_status_update`.
"""

from __future__ import annotations

import re
from typing import Any

from bot.action_commands import action_commands
from bot.cluster_commands import cluster_commands, take_cluster_option
from bot.after_ack import ButtonSpec, button_value, clicked_by
from bot.grammar import (
    MAX_TEXT_LENGTH,
    MAX_TITLE_LENGTH,
    CommandRegistry,
    CommandSpec,
    Invocation,
    no_arguments,
    parse_severity,
    parse_user,
    require_text,
    rest_after,
)
from chat.blocks import ACTION_ASSESS, ACTION_ESCALATE, ACTION_POST_UPDATE, ACTION_RESOLVE
from chat.views import status_update_modal
from incident.action_kinds import ActionSpecs, action_specs
from incident.errors import NotInIncidentChannel
from incident.command_errors import command_error
from incident.kube_syntax import check_name, cut
from incident.model import DEFAULT_SEVERITY, SEVERITIES, Incident, Status
from incident.clusters import ALL
from service import escalation, fleet, lifecycle, recovery
from service.assessment import request_assessment
from service.context import Context
from service.lifecycle import Reply


def build_registry(kinds: ActionSpecs | None = None) -> CommandRegistry:
    """The bot's grammar: help, the incident commands, the risky-action commands (from ``kinds``)."""
    registry: CommandRegistry

    def run_help(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
        return Reply(registry.help_text(services.templates))

    help_spec = CommandSpec("help", "help", "this list", _no_args_at_all, run_help)
    registry = CommandRegistry([help_spec, *incident_commands(), *action_commands(kinds or action_specs()),
                                *cluster_commands()])
    return registry


def run_command(services: Context, registry: CommandRegistry, invocation: Invocation) -> Reply:
    """Resolve the incident (when the command needs one) and run the spec's handler."""
    spec = invocation.command.spec
    incident = services.store.find_by_channel(invocation.channel_id)
    if spec.needs_incident and incident is None:
        raise NotInIncidentChannel(services.refusal("needs_incident_channel", slash=registry.slash, name=spec.name),
                                   hint=services.refusal("needs_incident_channel_hint", slash=registry.slash))
    return spec.handle(services, invocation, incident)


# --- parsers ----------------------------------------------------------------------------------------


def _no_args_at_all(tokens: list[str], rest: str) -> dict[str, Any]:
    return {}


def _parse_open(tokens: list[str], rest: str) -> dict[str, Any]:
    cluster, tokens, rest = take_cluster_option(tokens, rest)
    severity = DEFAULT_SEVERITY
    if tokens and tokens[0].lower() in SEVERITIES:
        severity = tokens[0].lower()
        rest = rest_after(rest, 1)
    elif tokens and re.fullmatch(r"(?i)sev\d+", tokens[0]):
        parse_severity(tokens[0])
    args: dict[str, Any] = {"severity": severity, "title": require_text(rest, "title", MAX_TITLE_LENGTH)}
    return args | ({"cluster": cluster} if cluster else {})


def _parse_severity(tokens: list[str], rest: str) -> dict[str, Any]:
    if len(tokens) != 1:
        raise command_error("one_severity")
    return {"severity": parse_severity(tokens[0])}


def _parse_role(tokens: list[str], rest: str) -> dict[str, Any]:
    if len(tokens) != 2:
        raise command_error("role_arguments")
    role = tokens[0].lower()
    if role not in ("commander", "comms"):
        raise command_error("unknown_role", got=cut(tokens[0], 30))
    return {"role": role, "user": parse_user(tokens[1])}


def _parse_update(tokens: list[str], rest: str) -> dict[str, Any]:
    return {"text": require_text(rest, "update text")}


IMPACTS: dict[str, dict[str, bool]] = {
    "customer-facing": {"customer_facing": True}, "internal": {"customer_facing": False},
    "pressure-on": {"business_pressure": True}, "pressure-off": {"business_pressure": False},
}


def _parse_impact(tokens: list[str], rest: str) -> dict[str, Any]:
    if len(tokens) != 1 or tokens[0].lower() not in IMPACTS:
        raise command_error("unknown_impact")
    return dict(IMPACTS[tokens[0].lower()])


def _parse_mitigate(tokens: list[str], rest: str) -> dict[str, Any]:
    return {"note": rest[:MAX_TEXT_LENGTH]}


def _parse_resolve(tokens: list[str], rest: str) -> dict[str, Any]:
    if not tokens:
        return {"override": None}
    if tokens[0] != "--override":
        raise command_error("resolve_arguments", got=cut(rest, 30))
    return {"override": require_text(rest_after(rest, 1), "override reason", 500)}


# --- the commands -----------------------------------------------------------------------------------


def incident_commands() -> tuple[CommandSpec, ...]:
    """The incident's own commands, in help order."""
    return (
        CommandSpec("incident open", "incident open [--cluster <name>] [sev1|sev2|sev3] <title>",
                    f"open an incident channel (default {DEFAULT_SEVERITY})", _parse_open, _run_open),
        CommandSpec("incident status", "incident status", "show this incident's state", no_arguments, _run_status,
                    needs_incident=True),
        CommandSpec("severity", "severity <sev1|sev2|sev3>", "change the severity", _parse_severity, _run_severity,
                    needs_incident=True),
        CommandSpec("role", "role <commander|comms> <@user>", "assign the incident commander or comms lead",
                    _parse_role, _run_role, needs_incident=True),
        CommandSpec("update", "update <text>", "post a status update here and to stakeholders", _parse_update,
                    _run_update, needs_incident=True),
        CommandSpec("impact", "impact <customer-facing|internal|pressure-on|pressure-off>",
                    "mark customer impact or business pressure (drives escalations and the post-mortem)",
                    _parse_impact, _run_impact, needs_incident=True),
        CommandSpec("mitigate", "mitigate [note]", "mark the impact as stopped (cause not yet fixed)", _parse_mitigate,
                    _run_mitigate, needs_incident=True),
        CommandSpec("resolve", "resolve [--override <reason>]",
                    "validate recovery against the runbook's checklist, then resolve (commander may override)",
                    _parse_resolve, _run_resolve, needs_incident=True),
        CommandSpec("postmortem", "postmortem", "draft the post-mortem now and post it as a file", no_arguments,
                    _run_postmortem, needs_incident=True),
        CommandSpec("assess", "assess [--cluster <name>|all]",
                    "run the 60-second cluster assessment and post the verdict (`all`: a verdict matrix of every cluster)",
                    _parse_assess, _run_assess),
        CommandSpec("replaced node", "replaced node <deleted> by <new>",
                    "a node the bot deleted is replaced by another: when it registers, offer the deleted one's "
                    "labels and taints", _parse_replaced, _run_replaced, needs_incident=True),
    )


def _parse_replaced(tokens: list[str], rest: str) -> dict[str, Any]:
    if len(tokens) != 3 or tokens[1].lower() != "by":
        raise command_error("replaced_arguments")
    return {"old": check_name(tokens[0], "node"), "new": check_name(tokens[2], "node")}


# --- handlers: the calls into the lifecycle -----------------------------------------------------------


def _run_open(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    args = inv.command.args
    cluster = fleet.cluster_for(services, inv.channel_id, None, args.get("cluster"))
    return lifecycle.open_incident(services, user_id=inv.user_id, severity=args["severity"], title=args["title"],
                                   cluster=cluster.name)


def _run_replaced(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    args = inv.command.args
    return recovery.replacement_named(services, incident, args["old"], args["new"], inv.user_id)


def _run_status(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.incident_status(services, incident)


def _run_severity(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.change_severity(services, incident, inv.command.args["severity"], inv.user_id)


def _run_role(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.assign_role(services, incident, inv.command.args["role"], inv.command.args["user"], inv.user_id)


def _run_update(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.post_status_update(services, incident, inv.command.args["text"], inv.user_id)


def _run_mitigate(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.change_status(services, incident, Status.MITIGATED, inv.user_id, inv.command.args["note"])


def _run_resolve(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.request_resolve(services, incident, inv.user_id, inv.command.args["override"])


def _parse_assess(tokens: list[str], rest: str) -> dict[str, Any]:
    cluster, tokens, rest = take_cluster_option(tokens, rest, allow_all=True)
    no_arguments(tokens, rest)
    return {"cluster": cluster} if cluster else {}


def _run_assess(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    named = inv.command.args.get("cluster")
    if named == ALL:
        return fleet.request_fleet_assessment(services, inv.channel_id, incident, inv.user_id)
    cluster = fleet.cluster_for(services, inv.channel_id, incident, named)
    return request_assessment(services, incident, inv.channel_id, inv.user_id, cluster)


def _run_postmortem(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    lifecycle.request_postmortem(services, incident, inv.user_id)
    return Reply(services.templates.render("postmortem_requested.slack.j2"))


def _run_impact(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.change_impact(services, incident, inv.user_id, **inv.command.args)


# --- the incident header's buttons and the status-update modal ------------------------------------------

UPDATE_MODAL_CALLBACK = "status_update_modal"


def _header_incident(services: Context, body: dict[str, Any]) -> Incident:
    """The incident a header button names; a value naming another cluster than the incident's is refused."""
    incident_id, cluster = fleet.split_button_value(button_value(services, body, "no_incident_in_button"))
    incident = services.store.get(incident_id)
    fleet.check_button(services, incident, cluster)
    return incident


def _on_resolve(services: Context, body: dict[str, Any]) -> Reply:
    incident = _header_incident(services, body)
    return lifecycle.request_resolve(services, incident, clicked_by(body), None)


def _on_post_update(services: Context, body: dict[str, Any]) -> Reply:
    incident = _header_incident(services, body)
    services.slack.call("views.open", trigger_id=body["trigger_id"],
                        view=status_update_modal(UPDATE_MODAL_CALLBACK, incident.id, services.templates).to_dict())
    return Reply("")


def _on_assess(services: Context, body: dict[str, Any]) -> Reply:
    incident = _header_incident(services, body)
    return request_assessment(services, incident, body["channel"]["id"], clicked_by(body))


def _on_escalate(services: Context, body: dict[str, Any]) -> Reply:
    incident = _header_incident(services, body)
    return Reply(escalation.escalate_by_hand(services, incident, clicked_by(body)))


def incident_buttons() -> tuple[ButtonSpec, ...]:
    """The buttons of the pinned incident header."""
    return (ButtonSpec(ACTION_RESOLVE, _on_resolve), ButtonSpec(ACTION_POST_UPDATE, _on_post_update, durable=False),
            ButtonSpec(ACTION_ASSESS, _on_assess), ButtonSpec(ACTION_ESCALATE, _on_escalate))


def submit_status_update(services: Context, incident_id: str, text: str, user_id: str) -> Reply:
    """The status-update modal was submitted with ``text``."""
    return lifecycle.post_status_update(services, services.store.get(incident_id), text, user_id)
