"""The action kinds' specs (pure): one spec per kind, layers from the runbook, descriptions that parse back,
Kubernetes' label syntax, and the spec flags the confirmation message reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chat.action_blocks import confirmation
from incident.action_kinds import COMPONENT_LAYERS, ActionArgs, ActionSpec, ActionSpecs, action_specs, node_specs
from incident.actions import ActionRequest, ActionStatus
from incident.drill import action_layer
from incident.errors import CommandError
from incident.kube_syntax import check_label_key, check_label_value, check_name
from incident.runbook import RECOVERY_ORDER
from incident.templates import TemplateRenderer

EXAMPLES: dict[str, tuple[str, ActionArgs]] = {
    "cordon": ("cordon node kwok-node-1", ActionArgs("kwok-node-1")),
    "uncordon": ("uncordon node kwok-node-1", ActionArgs("kwok-node-1")),
    "drain": ("drain node n1 --grace 5 --timeout 60", ActionArgs("n1", {"grace": 5, "timeout": 60})),
    "delete-node": ("delete node n1", ActionArgs("n1")),
    "label": ("label node n1 topology.kubernetes.io/zone=eu-1a",
              ActionArgs("n1", {"key": "topology.kubernetes.io/zone", "value": "eu-1a"})),
    "unlabel": ("unlabel node n1 node-role.kubernetes.io/spare",
                ActionArgs("n1", {"key": "node-role.kubernetes.io/spare"})),
    "restart": ("restart daemonset kube-system/aws-node",
                ActionArgs("kube-system/aws-node", {"workload": "daemonset"})),
    "scale": ("scale deployment shop/web to 0", ActionArgs("shop/web", {"workload": "deployment", "replicas": 0})),
    "delete-pod": ("delete pod shop/web-7d4f", ActionArgs("shop/web-7d4f")),
    "restore-node": ("restore node n1 node-role.kubernetes.io/worker= topology.kubernetes.io/zone=eu-1a "
                     "--taint dedicated=db:NoSchedule",
                     ActionArgs("n1", {"labels": {"node-role.kubernetes.io/worker": "",
                                                  "topology.kubernetes.io/zone": "eu-1a"},
                                       "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]})),
    "probes-off": ("probes off deployment shop/web", ActionArgs("shop/web", {"workload": "deployment"})),
    "probes-restore": ("probes restore deployment shop/web", ActionArgs("shop/web", {"workload": "deployment"})),
}
"""One typed command per kind: a new kind without an example fails :func:`test_every_kind_has_an_example`."""
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_every_kind_has_exactly_one_spec() -> None:
    kinds = [spec.kind for spec in action_specs()]
    assert len(kinds) == len(set(kinds)) == len(action_specs())
    with pytest.raises(ValueError, match="declared twice"):
        ActionSpecs([*node_specs(), node_specs()[0]])


def test_every_kind_has_an_example() -> None:
    assert set(EXAMPLES) == set(action_specs().kinds)


def test_every_layer_named_is_in_the_runbooks_recovery_order() -> None:
    order = {layer.key for layer in RECOVERY_ORDER}
    for spec in action_specs():
        assert set(spec.layers) <= order, spec.kind
    assert {layer for _, layer in COMPONENT_LAYERS} <= order


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_the_description_is_the_command_and_parses_back(kind: str) -> None:
    typed, expected = EXAMPLES[kind]
    specs = action_specs()
    spec, args = specs.match(typed) or (None, None)
    assert spec is specs.get(kind) and args == expected
    described = spec.describe(args.target, args.params)
    assert specs.match(described) == (spec, args)


def test_the_recovery_layer_comes_from_the_spec() -> None:
    assert action_layer("label node n1 zone=a") == action_layer("drain node n1") == "infrastructure"
    assert action_layer("restart deployment kube-system/coredns") == "dns/ingress"
    assert action_layer("delete pod kube-system/etcd-cp-1") == "etcd"
    assert action_layer("restart statefulset ingress-nginx/controller") == "dns/ingress"
    assert action_layer("scale deployment shop/web to 3") == "applications"
    assert action_layer("restart daemonset kube-system/aws-node") == "infrastructure"  # the CNI is the ground
    assert action_layer("reboot the datacenter") == "applications"  # no kind reads it


def test_flags() -> None:
    specs = action_specs()
    assert {spec.kind for spec in specs if spec.guarded} == {"restart", "scale", "probes-off"}
    assert specs.get("delete-node").destructive({})
    assert specs.get("scale").destructive({"replicas": 0}) and not specs.get("scale").destructive({"replicas": 2})
    assert not any(specs.get(kind).destructive({}) for kind in ("cordon", "label", "unlabel", "delete-pod"))
    assert [spec.kind for spec in specs if spec.warning] == ["delete-node", "probes-off"]
    assert specs.get("probes-off").destructive({}) and not specs.get("probes-restore").destructive({})
    with pytest.raises(ValueError, match="unknown action kind"):
        specs.get("reboot")


def _request(kind: str, target: str, params: dict[str, Any]) -> ActionRequest:
    return ActionRequest(id="A1", cluster="prod", kind=kind, target=target, requested_by="U1", channel_id="C1",
                         requested_at=T0, params=params, status=ActionStatus.AWAITING_CONFIRMATION,
                         confirm_deadline=T0, dry_run="• x")


def test_the_warning_template_is_the_specs() -> None:
    templates = TemplateRenderer()
    warned = str(confirmation(_request("delete-node", "n1", {}), templates, T0)[1][0].to_dict())
    plain = str(confirmation(_request("label", "n1", {"key": "zone", "value": "a"}), templates, T0)[1][0].to_dict())
    assert "Deleting a node removes it from the cluster for good" in warned
    assert "for good" not in plain and "*label node n1 zone=a*" in plain


@pytest.mark.parametrize("key", ["zone", "topology.kubernetes.io/zone", "a_b.c-d", "x" * 63, "example.com/" + "y" * 63])
def test_valid_label_keys(key: str) -> None:
    assert check_label_key(key) == key


@pytest.mark.parametrize(("key", "why"), [
    ("-zone", "the name must be"), ("zone-", "the name must be"), ("x" * 64, "the name must be"),
    ("/zone", "prefix before '/'"), ("Example.com/zone", "prefix before '/'"), ("a/b/c", "prefix before '/'"),
    ("example.com/", "the name must be"), ("zone!", "the name must be"), ("<!channel>", "the name must be"),
])
def test_invalid_label_keys(key: str, why: str) -> None:
    with pytest.raises(CommandError, match=why) as caught:
        check_label_key(key)
    assert "<" not in caught.value.message  # echoed input is escaped


def test_label_values() -> None:
    assert check_label_value("", "k") == "" and check_label_value("eu-1a", "k") == "eu-1a"
    for bad in ("-a", "a-", "x" * 64, "a b", "a/b"):
        with pytest.raises(CommandError, match="is not a valid value for label"):
            check_label_value(bad, "k")


def test_label_grammar() -> None:
    spec = action_specs().get("label")
    assert spec.parse(["n1", "k="]) == ActionArgs("n1", {"key": "k", "value": ""})
    for tokens, message in ((["n1"], "one label as `key=value`"), (["n1", "zone"], "is not `key=value`"),
                            (["Bad_Node", "k=v"], "not a valid node name"), (["n1", "k=v", "x=y"], "one label")):
        with pytest.raises(CommandError, match=message):
            spec.parse(tokens)
    unlabel = action_specs().get("unlabel")
    with pytest.raises(CommandError, match="only the label key"):
        unlabel.parse(["n1", "zone=a"])


def test_echoed_input_is_cut_before_it_is_escaped() -> None:
    with pytest.raises(CommandError) as caught:
        check_name("&" * 100, "node")
    quoted = caught.value.message.split("`")[1]
    assert quoted.endswith("…") and quoted.count("&amp;") == 59 and quoted.replace("&amp;", "") == "…"


def test_a_spec_is_everything_about_a_kind() -> None:
    spec = ActionSpec("reboot", ("reboot", "node"), "reboot node <name>", "reboot a node", node_specs()[0].parse,
                      lambda target, params: f"reboot node {target}", "nodes", "infrastructure")
    specs = ActionSpecs([spec])
    assert specs.match("reboot node n1") == (spec, ActionArgs("n1"))
    assert spec.layers == ("infrastructure",) and not spec.guarded and not spec.destructive({})
