"""Runs a parsed ``/k8s`` command: finds the incident it applies to and calls the lifecycle.

Handlers are looked up by command name in :data:`HANDLERS`; a command registered in the grammar
without a handler is caught by a test, so help never lists something that does not work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service import lifecycle
from bot.grammar import CommandRegistry, ParsedCommand
from service.lifecycle import Reply
from service.context import Context
from incident.errors import NotInIncidentChannel
from incident.model import Incident, Status


@dataclass(frozen=True)
class Invocation:
    """Who ran a command where, and what they asked for."""

    command: ParsedCommand
    user_id: str
    channel_id: str
    response_url: str | None = None
    trigger_id: str | None = None


Handler = Callable[[Context, Invocation, Incident | None], Reply]
HANDLERS: dict[str, Handler] = {}


def handles(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register


def run_command(services: Context, registry: CommandRegistry, invocation: Invocation) -> Reply:
    """Resolve the incident (when the command needs one) and run its handler."""
    spec = invocation.command.spec
    incident = services.store.find_by_channel(invocation.channel_id)
    if spec.needs_incident and incident is None:
        raise NotInIncidentChannel(
            f"`{registry.slash} {spec.name}` works inside an incident channel.",
            hint=f"Run it in the incident's channel, or open one with `{registry.slash} incident open <title>`.",
        )
    if spec.name == "help":
        return Reply(registry.help_text())
    return HANDLERS[spec.name](services, invocation, incident)


@handles("incident open")
def _open(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    args = inv.command.args
    return lifecycle.open_incident(services, user_id=inv.user_id, severity=args["severity"], title=args["title"])


@handles("incident status")
def _status(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.incident_status(services, incident)


@handles("severity")
def _severity(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.change_severity(services, incident, inv.command.args["severity"], inv.user_id)


@handles("role")
def _role(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.assign_role(services, incident, inv.command.args["role"], inv.command.args["user"], inv.user_id)


@handles("update")
def _update(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.post_status_update(services, incident, inv.command.args["text"], inv.user_id)


@handles("mitigate")
def _mitigate(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.change_status(services, incident, Status.MITIGATED, inv.user_id, inv.command.args["note"])


@handles("resolve")
def _resolve(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.request_resolve(services, incident, inv.user_id, inv.command.args["override"])


@handles("assess")
def _assess(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    from service.assessment import request_assessment

    return request_assessment(services, incident, inv.channel_id, inv.user_id)


@handles("postmortem")
def _postmortem(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    lifecycle.request_postmortem(services, incident, inv.user_id)
    return Reply("Drafting the post-mortem; it will be posted here as a file.")


@handles("impact")
def _impact(services: Context, inv: Invocation, incident: Incident | None) -> Reply:
    assert incident is not None
    return lifecycle.change_impact(services, incident, inv.user_id, **inv.command.args)
