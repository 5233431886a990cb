"""The /k8s grammar: every command parses, bad input gets the right usage, help comes from the registry.

Usage lines and echoed input are mrkdwn-escaped (``<title>`` is sent as ``&lt;title&gt;``), so the
expected texts below are compared escaped."""

from __future__ import annotations

import pytest

from bot.commands import build_registry
from chat.escape import escape_mrkdwn as escape
from incident.errors import CommandError
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
        ("incident open", "The title is missing", "incident open [--cluster <name>] [sev1|sev2|sev3] <title>"),
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


def test_every_spec_has_a_handler_and_every_handler_a_spec() -> None:
    import inspect

    from bot import action_commands, app, commands

    handles = {spec.handle for spec in registry.specs}
    assert all(callable(spec.handle) for spec in registry.specs)
    for module in (commands, action_commands):
        named = {f for name, f in inspect.getmembers(module, inspect.isfunction)
                 if name.startswith("_run_") and f.__module__ == module.__name__}
        assert named and named <= handles, f"handlers no spec uses in {module.__name__}: {named - handles}"
    clicks = {button.handle for button in app.buttons()}
    for module in (commands, action_commands):
        named = {f for name, f in inspect.getmembers(module, inspect.isfunction)
                 if name.startswith("_on_") and f.__module__ == module.__name__}
        assert named and named <= clicks, f"button handlers no ButtonSpec uses: {named - clicks}"
    assert len({button.action_id for button in app.buttons()}) == len(app.buttons())


def test_every_action_kind_is_a_command_built_from_its_spec() -> None:
    from incident.action_kinds import action_specs

    for kind in action_specs():
        spec = registry.get(" ".join(kind.words))
        assert (spec.usage, spec.help, spec.needs_incident, spec.risky) == (kind.usage, kind.help, True, True)


@pytest.mark.parametrize(
    ("text", "target", "params"),
    [
        ("label node kwok-node-1 zone=eu-1a", "kwok-node-1", {"key": "zone", "value": "eu-1a"}),
        ("LABEL NODE n1 node-role.kubernetes.io/worker=", "n1", {"key": "node-role.kubernetes.io/worker", "value": ""}),
        ("unlabel node n1 topology.kubernetes.io/zone", "n1", {"key": "topology.kubernetes.io/zone"}),
    ],
)
def test_label_and_unlabel_parse(text: str, target: str, params: dict[str, object]) -> None:
    parsed = registry.parse(text)
    assert parsed.spec.name == " ".join(text.lower().split()[:2])
    assert parsed.args == {"target": target, "params": params}


@pytest.mark.parametrize(
    ("text", "message", "usage"),
    [
        ("label node n1", "one label as `key=value`", "label node <name> <key>=<value>"),
        ("label node n1 zone", "is not `key=value`", "label node <name> <key>=<value>"),
        ("label node n1 -zone=a", "is not a valid label key", "label node"),
        ("label node n1 zone=eu 1a", "one label", "label node"),
        ("label node n1 zone=-a", "is not a valid value for label `zone`", "label node"),
        ("label node n1 Bad.Prefix/zone=a", "prefix before '/'", "label node"),
        ("label node N1 zone=a", "not a valid node name", "label node"),
        ("unlabel node n1", "the label key", "unlabel node <name> <key>"),
        ("unlabel node n1 zone=a", "only the label key", "unlabel node <name> <key>"),
    ],
)
def test_bad_labels_name_the_rule(text: str, message: str, usage: str) -> None:
    with pytest.raises(CommandError) as caught:
        registry.parse(text)
    assert escape(message) in caught.value.message
    assert caught.value.hint is not None and escape(usage) in caught.value.hint


def test_help_and_usage_are_mrkdwn_safe() -> None:
    text = registry.help_text(TemplateRenderer())
    assert "<" not in text and ">" not in text
    assert "`/k8s cordon node &lt;name&gt;`" in text and "`/k8s cancel &lt;action-id&gt;`" in text
    assert "--override &lt;reason&gt;" in text
    with pytest.raises(CommandError) as caught:
        registry.parse("cordon node")
    assert caught.value.hint == "Usage: `/k8s cordon node &lt;name&gt;`"


@pytest.mark.parametrize("text", ["<!channel> now", "cordon node <!here>", "role commander <!channel>",
                                  "resolve <@U1> please", "label node n1 <!channel>=x"])
def test_echoed_input_is_escaped(text: str) -> None:
    with pytest.raises(CommandError) as caught:
        registry.parse(text)
    assert "<!" not in caught.value.user_text() and "<@" not in caught.value.user_text()


def test_a_long_ampersand_is_cut_before_it_is_escaped() -> None:
    with pytest.raises(CommandError) as caught:
        registry.parse("&" * 80)
    message = caught.value.message
    assert message.startswith("Unknown command `") and message.count("&amp;") == 29
    assert "&am`" not in message and "&a`" not in message and "&`" not in message


def test_the_grammar_imports_no_command_module() -> None:
    """Commands import the grammar, never the reverse (no cycle inside bot/ is tests/test_layers.py's check)."""
    from tests.test_layers import _module_graph

    assert not _module_graph("bot")["bot.grammar"] & {"bot.commands", "bot.action_commands", "bot.app"}


def test_a_new_kind_becomes_a_command_from_its_spec_alone() -> None:
    from incident.action_kinds import ActionSpec, ActionSpecs, action_specs, node_specs

    reboot = ActionSpec("reboot", ("reboot", "node"), "reboot node <name>", "reboot a node (confirm first)",
                        node_specs()[0].parse, lambda target, params: f"reboot node {target}", "nodes",
                        "infrastructure")
    grown = build_registry(ActionSpecs([*action_specs(), reboot]))
    parsed = grown.parse("reboot node kwok-node-1")
    assert parsed.args == {"target": "kwok-node-1", "params": {}}
    assert parsed.spec.risky and parsed.spec.needs_incident
    assert escape("/k8s reboot node <name>") in grown.help_text(TemplateRenderer())
    assert len(grown.specs) == len(registry.specs) + 1
