"""The kinds of risky action, one :class:`ActionSpec` each: everything about a kind in one place (pure).

A spec carries what the rest of the bot asks about a kind: the words a person types and the usage and
help ``/k8s help`` shows (the bot builds each command from its spec), the parser of the arguments (every
target checked against Kubernetes' syntax, :mod:`incident.kube_syntax`; its refusals are macros of
``templates/command_errors.slack.j2``, :mod:`incident.command_errors`), how a request is described (the
description *is* the command, and parses back with the same spec), whether it is destructive (a second
confirmer may be needed), the recovery layer it works on (the drill's order check), whether the
recovery-order guard holds it back while the control plane fails, and the template of an extra warning
in its confirmation message. :func:`default_action_specs` lists them explicitly, like
``kube.checks.default_checks``; the executor of each kind lives in ``kube.actions`` (one module per
family: ``nodes``, ``workloads``, ``probes``), and a guard test keeps the two lists equal.

Adding a kind: one spec here, one executor in ``kube/actions/<family>.py`` (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from incident.command_errors import command_error
from incident.errors import CommandError
from incident.runbook import CNI_DAEMONSETS
from incident.kube_syntax import check_label_key, check_label_value, check_name, cut, parse_namespaced

WORKLOAD_KINDS: tuple[str, ...] = ("deployment", "daemonset", "statefulset")
MAX_REPLICAS = 1000
DEFAULT_DRAIN_TIMEOUT = 120
MAX_DRAIN_TIMEOUT = 3600
MAX_GRACE = 3600

NODE_FAMILY = "nodes"
WORKLOAD_FAMILY = "workloads"
PROBES_FAMILY = "probes"

COMPONENT_LAYERS: tuple[tuple[str, str], ...] = (
    ("etcd", "etcd"), ("apiserver", "apiserver"), ("scheduler", "scheduler/controller-manager"),
    ("controller-manager", "scheduler/controller-manager"), ("coredns", "dns/ingress"), ("kube-dns", "dns/ingress"),
    ("ingress", "dns/ingress"), *((f"/{name}", "infrastructure") for name in CNI_DAEMONSETS),
)
"""A workload whose ``namespace/name`` contains the word on the left works on the layer on the right
(first match wins); other workloads are applications. Keys are :data:`incident.runbook.RECOVERY_ORDER`'s."""


@dataclass(frozen=True)
class ActionArgs:
    """What the parser of a kind read: the target (a node name or ``namespace/name``) and the parameters."""

    target: str
    params: dict[str, Any] = field(default_factory=dict)


Parser = Callable[[list[str]], ActionArgs]
Describer = Callable[[str, dict[str, Any]], str]


def _never(params: dict[str, Any]) -> bool:
    return False


@dataclass(frozen=True)
class ActionSpec:
    """One kind of risky action."""

    kind: str
    """Stored in the request (``delete-node``); the key of its executor in ``kube.actions``."""
    words: tuple[str, ...]
    """What is typed after ``/k8s`` (``("delete", "node")``)."""
    usage: str
    """The whole command, raw (``delete node <name>``); escaped wherever it is shown."""
    help: str
    parse: Parser
    describe: Describer
    """``(target, params)`` → what a person would type, e.g. ``scale deployment shop/web to 0``."""
    family: str
    """Which ``kube/actions/<family>.py`` runs it."""
    layer: str
    """The recovery layer it works on (a key of ``incident.runbook.RECOVERY_ORDER``)."""
    component_layers: bool = False
    """The target's name may move it to a lower layer (:data:`COMPONENT_LAYERS`): ``restart deployment
    kube-system/coredns`` is DNS work, not an application's."""
    guarded: bool = False
    """Held back (``Proceed anyway``) while the latest assessment says etcd or the apiserver is failing."""
    destructive: Callable[[dict[str, Any]], bool] = _never
    """Cannot be undone with these parameters: a confirm dialog, and a second confirmer when configured."""
    warning: str = ""
    """A template (``templates/<warning>``) added to the confirmation message, or none."""

    def layer_of(self, target: str) -> str:
        """The recovery layer a request for ``target`` works on."""
        if self.component_layers:
            lowered = target.lower()
            for word, layer in COMPONENT_LAYERS:
                if word in lowered:
                    return layer
        return self.layer

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer :meth:`layer_of` can name (for the guard test against the runbook)."""
        extra = tuple(layer for _, layer in COMPONENT_LAYERS) if self.component_layers else ()
        return tuple(dict.fromkeys((self.layer, *extra)))


class ActionSpecs:
    """The kinds by name, in help order; built by :func:`default_action_specs` or by a test."""

    def __init__(self, specs: Iterable[ActionSpec]) -> None:
        self._specs: dict[str, ActionSpec] = {}
        words: set[tuple[str, ...]] = set()
        for spec in specs:
            if spec.kind in self._specs or spec.words in words:
                raise ValueError(f"action kind {spec.kind!r} (or its words {' '.join(spec.words)!r}) declared twice")
            self._specs[spec.kind] = spec
            words.add(spec.words)

    def __iter__(self) -> Iterator[ActionSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def get(self, kind: str) -> ActionSpec:
        """The spec of ``kind``; a :class:`ValueError` for a kind no spec declares (a corrupt record)."""
        try:
            return self._specs[kind]
        except KeyError:
            raise ValueError(f"unknown action kind {kind!r}") from None

    def match(self, description: str) -> tuple[ActionSpec, ActionArgs] | None:
        """Read a description (or a typed command) back into its kind and arguments; ``None`` if none parses."""
        tokens = description.split()
        lowered = tuple(token.lower() for token in tokens)
        candidates = sorted((s for s in self if lowered[: len(s.words)] == s.words), key=lambda s: -len(s.words))
        for spec in candidates:
            try:
                return spec, spec.parse(tokens[len(spec.words):])
            except CommandError:
                continue
        return None


# --- parsers ----------------------------------------------------------------------------------------


def _one_node(tokens: list[str]) -> ActionArgs:
    if len(tokens) != 1:
        raise command_error("one_node")
    return ActionArgs(check_name(tokens[0], "node"))


def _seconds(flag: str, value: str, maximum: int) -> int:
    if not value.isdigit() or int(value) > maximum:
        raise command_error("seconds", flag=flag, maximum=maximum, got=cut(value))
    return int(value)


def _parse_drain(tokens: list[str]) -> ActionArgs:
    if not tokens:
        raise command_error("node_missing")
    node = check_name(tokens[0], "node")
    params: dict[str, Any] = {"grace": None, "timeout": DEFAULT_DRAIN_TIMEOUT}
    options = tokens[1:]
    for index in range(0, len(options), 2):
        flag = options[index].lower()
        if flag not in ("--grace", "--timeout"):
            raise command_error("unknown_drain_option", got=cut(options[index]))
        if index + 1 >= len(options):
            raise command_error("seconds_missing", flag=flag)
        if flag == "--grace":
            params["grace"] = _seconds(flag, options[index + 1], MAX_GRACE)
        else:
            params["timeout"] = max(1, _seconds(flag, options[index + 1], MAX_DRAIN_TIMEOUT))
    return ActionArgs(node, params)


def _parse_label(tokens: list[str]) -> ActionArgs:
    if len(tokens) != 2:
        raise command_error("label_arguments")
    key, equals, value = tokens[1].partition("=")
    if not equals:
        raise command_error("not_key_value", got=cut(tokens[1]))
    key = check_label_key(key)
    return ActionArgs(check_name(tokens[0], "node"), {"key": key, "value": check_label_value(value, key)})


def _parse_unlabel(tokens: list[str]) -> ActionArgs:
    if len(tokens) != 2:
        raise command_error("unlabel_arguments")
    if "=" in tokens[1]:
        raise command_error("only_label_key", got=cut(tokens[1]))
    return ActionArgs(check_name(tokens[0], "node"), {"key": check_label_key(tokens[1])})


TAINT_EFFECTS: tuple[str, ...] = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _parse_taint(token: str) -> dict[str, str]:
    """``key[=value]:Effect`` (kubectl's taint syntax) → ``{"key", "value", "effect"}``."""
    body, colon, effect = token.rpartition(":")
    if not colon or effect not in TAINT_EFFECTS:
        raise command_error("not_a_taint", got=cut(token), effects=TAINT_EFFECTS)
    key, _, value = body.partition("=")
    key = check_label_key(key)
    return {"key": key, "value": check_label_value(value, key) if value else "", "effect": effect}


def _parse_restore_node(tokens: list[str]) -> ActionArgs:
    if not tokens:
        raise command_error("restore_arguments")
    node = check_name(tokens[0], "node")
    labels: dict[str, str] = {}
    taints: list[dict[str, str]] = []
    rest = tokens[1:]
    index = 0
    while index < len(rest):
        token = rest[index]
        if token.lower() == "--taint":
            if index + 1 >= len(rest):
                raise command_error("taint_missing")
            taints.append(_parse_taint(rest[index + 1]))
            index += 2
            continue
        key, equals, value = token.partition("=")
        if not equals:
            raise command_error("not_label_nor_taint", got=cut(token))
        key = check_label_key(key)
        labels[key] = check_label_value(value, key)
        index += 1
    if not labels and not taints:
        raise command_error("restore_nothing")
    return ActionArgs(node, {"labels": labels, "taints": taints})


def _parse_restart(tokens: list[str]) -> ActionArgs:
    if len(tokens) != 2 or tokens[0].lower() not in WORKLOAD_KINDS:
        raise command_error("restart_arguments")
    workload = tokens[0].lower()
    return ActionArgs(parse_namespaced(tokens[1], workload), {"workload": workload})


def _parse_scale(tokens: list[str]) -> ActionArgs:
    if len(tokens) == 3 and tokens[1].lower() == "to":
        tokens = [tokens[0], tokens[2]]  # the description's own form: scale deployment ns/web to 3
    if len(tokens) != 2:
        raise command_error("scale_arguments")
    if not tokens[1].isdigit() or int(tokens[1]) > MAX_REPLICAS:
        raise command_error("replicas", maximum=MAX_REPLICAS, got=cut(tokens[1]))
    return ActionArgs(parse_namespaced(tokens[0], "deployment"), {"workload": "deployment", "replicas": int(tokens[1])})


def _parse_probes(tokens: list[str]) -> ActionArgs:
    if len(tokens) != 2 or tokens[0].lower() != "deployment":
        raise command_error("probes_arguments")
    return ActionArgs(parse_namespaced(tokens[1], "deployment"), {"workload": "deployment"})


def _parse_pod(tokens: list[str]) -> ActionArgs:
    if len(tokens) != 1:
        raise command_error("pod_arguments")
    return ActionArgs(parse_namespaced(tokens[0], "pod"))


# --- descriptions -----------------------------------------------------------------------------------


def _typed(*words: str) -> Describer:
    """``<words> <target>``: cordon node x, delete pod ns/x."""
    def describe(target: str, params: dict[str, Any]) -> str:
        return f"{' '.join(words)} {target}"

    return describe


def _describe_drain(target: str, params: dict[str, Any]) -> str:
    flags = "".join(f" --{name} {params[name]}" for name in ("grace", "timeout") if params.get(name) is not None)
    return f"drain node {target}{flags}"


def _describe_label(target: str, params: dict[str, Any]) -> str:
    return f"label node {target} {params.get('key')}={params.get('value', '')}"


def _describe_unlabel(target: str, params: dict[str, Any]) -> str:
    return f"unlabel node {target} {params.get('key')}"


def taint_text(taint: dict[str, Any]) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


def _describe_restore_node(target: str, params: dict[str, Any]) -> str:
    labels = " ".join(f"{key}={value}" for key, value in sorted((params.get("labels") or {}).items()))
    taints = " ".join(f"--taint {taint_text(taint)}" for taint in params.get("taints") or ())
    return " ".join(part for part in (f"restore node {target}", labels, taints) if part)


def _describe_restart(target: str, params: dict[str, Any]) -> str:
    return f"restart {params.get('workload', 'deployment')} {target}"


def _describe_scale(target: str, params: dict[str, Any]) -> str:
    return f"scale deployment {target} to {params.get('replicas')}"


def _scale_to_zero(params: dict[str, Any]) -> bool:
    return params.get("replicas") == 0


def _always(params: dict[str, Any]) -> bool:
    return True


# --- the kinds --------------------------------------------------------------------------------------


def node_specs() -> tuple[ActionSpec, ...]:
    """Kinds that change a node (``kube/actions/nodes.py``): infrastructure, never held back by the guard."""
    common: dict[str, Any] = {"family": NODE_FAMILY, "layer": "infrastructure"}
    return (
        ActionSpec("cordon", ("cordon", "node"), "cordon node <name>", "mark a node unschedulable (confirm first)",
                   _one_node, _typed("cordon", "node"), **common),
        ActionSpec("uncordon", ("uncordon", "node"), "uncordon node <name>",
                   "make a node schedulable again (confirm first)", _one_node, _typed("uncordon", "node"), **common),
        ActionSpec("drain", ("drain", "node"), "drain node <name> [--grace N] [--timeout N]",
                   "cordon and evict a node's pods, respecting PodDisruptionBudgets (confirm first)",
                   _parse_drain, _describe_drain, **common),
        ActionSpec("delete-node", ("delete", "node"), "delete node <name>",
                   "remove a node from the cluster — the runbook's isolation step (confirm first)",
                   _one_node, _typed("delete", "node"), destructive=_always,
                   warning="action_warning_delete_node.slack.j2", **common),
        ActionSpec("label", ("label", "node"), "label node <name> <key>=<value>",
                   "set one label on a node, e.g. to restore the labels it had (confirm first)",
                   _parse_label, _describe_label, **common),
        ActionSpec("unlabel", ("unlabel", "node"), "unlabel node <name> <key>",
                   "remove one label from a node (confirm first)", _parse_unlabel, _describe_unlabel, **common),
        ActionSpec("restore-node", ("restore", "node"),
                   "restore node <name> [<key>=<value> ...] [--taint <key>[=<value>]:<effect> ...]",
                   "re-apply the labels and taints a deleted node had, once it registered again (confirm first)",
                   _parse_restore_node, _describe_restore_node, **common),
    )


def workload_specs() -> tuple[ActionSpec, ...]:
    """Kinds that change a workload or a pod (``kube/actions/workloads.py``); their layer follows the target."""
    common: dict[str, Any] = {"family": WORKLOAD_FAMILY, "layer": "applications", "component_layers": True}
    return (
        ActionSpec("restart", ("restart",), "restart deployment|daemonset|statefulset <namespace>/<name>",
                   "rollout restart a workload (confirm first)", _parse_restart, _describe_restart,
                   guarded=True, **common),
        ActionSpec("scale", ("scale", "deployment"), "scale deployment <namespace>/<name> <replicas>",
                   "set a Deployment's replicas (confirm first)", _parse_scale, _describe_scale,
                   guarded=True, destructive=_scale_to_zero, **common),
        ActionSpec("delete-pod", ("delete", "pod"), "delete pod <namespace>/<name>", "delete one pod (confirm first)",
                   _parse_pod, _typed("delete", "pod"), **common),
    )


def probes_specs() -> tuple[ActionSpec, ...]:
    """The runbook's emergency isolation and its way back (``kube/actions/probes.py``): a Deployment's probes."""
    common: dict[str, Any] = {"family": PROBES_FAMILY, "layer": "applications", "component_layers": True}
    return (
        ActionSpec("probes-off", ("probes", "off"), "probes off deployment <namespace>/<name>",
                   "emergency isolation: remove a Deployment's readiness/liveness/startup probes that spread a "
                   "cascade; the originals are kept on the Deployment for `probes restore` (confirm first)",
                   _parse_probes, _typed("probes", "off", "deployment"), guarded=True, destructive=_always,
                   warning="action_warning_probes_off.slack.j2", **common),
        ActionSpec("probes-restore", ("probes", "restore"), "probes restore deployment <namespace>/<name>",
                   "put back exactly the probes `probes off` removed (confirm first)", _parse_probes,
                   _typed("probes", "restore", "deployment"), **common),
    )


def default_action_specs() -> tuple[ActionSpec, ...]:
    """Every kind, in ``/k8s help`` order."""
    return (*node_specs(), *workload_specs(), *probes_specs())


@lru_cache(maxsize=1)
def action_specs() -> ActionSpecs:
    """The bot's kinds (built once per process from :func:`default_action_specs`)."""
    return ActionSpecs(default_action_specs())
