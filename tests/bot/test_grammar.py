"""The /k8s grammar: every command parses, bad input gets the right usage, help comes from the registry.

Usage lines and echoed input are mrkdwn-escaped (``<title>`` is sent as ``&lt;title&gt;``), so the
expected texts below are compared escaped."""

from __future__ import annotations

import pytest

from bot.commands import build_registry
from incident.errors import CommandError
from incident.kube_syntax import escape
from incident.templates import TemplateRenderer

registry = build_registry()


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("", "help", {}),
        ("help", "help", {}),
        ("incident open sev1 API down", "incident open", {"severity": "sev1", "title": "API down"}),
        ("incident open   API  is down ", "incident open", {"severity": "sev2", "title": "API  is down"}),
        ("INCIDENT OPEN SEV3 dns", "incident open", {"severity": "sev3", "title": "dns"}),
        ("incident status", "incident status", {}),
        ("severity sev1", "severity", {"severity": "sev1"}),
        ("role commander <@U123|alice>", "role", {"role": "commander", "user": "U123"}),
        ("role comms <@W9>", "role", {"role": "comms", "user": "W9"}),
        ("update Nodes recovering, 2/3 Ready", "update", {"text": "Nodes recovering, 2/3 Ready"}),
        ("mitigate failover done", "mitigate", {"note": "failover done"}),
        ("impact customer-facing", "impact", {"customer_facing": True}),
        ("impact pressure-off", "impact", {"business_pressure": False}),
        ("resolve", "resolve", {"override": None}),
        ("resolve --override DNS fixed, events are stale", "resolve", {"override": "DNS fixed, events are stale"}),
    ],
)
def test_valid_commands(text: str, name: str, args: dict[str, object]) -> None:
    parsed = registry.parse(text)
    assert parsed.name == name
    assert parsed.args == args


@pytest.mark.parametrize(
    ("text", "message", "usage"),
    [
        ("frobnicate", "Unknown command `frobnicate`", "/k8s help"),
        ("incident open", "The title is missing", "incident open [sev1|sev2|sev3] <title>"),
        ("incident open sev1", "The title is missing", "incident open"),
        ("incident open sev9 x", "Unknown severity `sev9`", "incident open"),
        ("severity high", "Unknown severity `high`", "severity <sev1|sev2|sev3>"),
        ("severity", "exactly one severity", "severity"),
        ("role boss <@U1>", "Unknown role `boss`", "role <commander|comms>"),
        ("role commander alice", "not a user mention", "role"),
        ("update", "The update text is missing", "update <text>"),
        ("impact everyone", "Say which impact", "impact <customer-facing|internal|pressure-on|pressure-off>"),
        ("resolve now please", "resolve takes only `--override <reason>`", "resolve [--override <reason>]"),
        ("resolve --override", "The override reason is missing", "resolve"),
        ("incident status now", "takes no arguments", "incident status"),
        ("incident open " + "x" * 200, "limit is 150", "incident open"),
    ],
)
def test_bad_input_names_the_problem_and_shows_usage(text: str, message: str, usage: str) -> None:
    with pytest.raises(CommandError) as caught:
        registry.parse(text)
    assert escape(message) in caught.value.message
    assert caught.value.hint is not None and escape(usage) in caught.value.hint


def test_help_lists_every_registered_command() -> None:
    text = registry.help_text(TemplateRenderer())
    for spec in registry.specs:
        assert escape(f"/k8s {spec.usage}") in text


def test_unknown_command_suggests_close_ones() -> None:
    with pytest.raises(CommandError) as caught:
        registry.parse("incidnt open x")
    assert "incident open" in (caught.value.hint or "")
