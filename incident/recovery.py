"""Guided recovery: from a verdict to the runbook's next safe steps, and what a step changed (pure).

The verdict says which patterns matched and in which order to recover the layers; this module turns
that into **steps a person can click**. :data:`RUNBOOK_STEPS` is the runbook's recovery knowledge as
data: for each pattern, ordered :class:`StepRule` s, each a risky action kind
(:mod:`incident.action_kinds`) whose target is read from the evidence (the NotReady node, the CNI
DaemonSet, the DNS deployment, the crash-looping component), or a manual step the bot cannot do for
you (etcd quorum, the apiserver). :func:`build_plan` orders the steps by the recovery layers
(:data:`incident.runbook.RECOVERY_ORDER`): only the first open step of the lowest unrecovered layer is
*primary*; the steps of higher layers wait for it. The plan is rebuilt from the stored assessment on
every click (never read from the button), so a forged button cannot name another object, and
:func:`plan_step` says why a click does not match the plan.

:func:`episode_starts` tells a step done in this episode of its pattern from one done before it cleared
and came back. :func:`delta` compares two assessments (cleared, still failing, new) and says whether a
step made things worse; :func:`deciding_checks` and :func:`early_delta` are the first, cheap look after a step
(only the checks whose facts decide the step's pattern). :func:`restore_params` is what ``restore node``
re-applies of a deleted node.
Used by ``chat.recovery_blocks`` (the buttons), ``service.recovery`` (clicks, the re-assessment after a
step), ``service.node_restore`` and the tests; imports neither Redis, Slack nor Kubernetes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from incident.action_kinds import action_specs
from incident.assessment import Assessment, CheckResult
from incident.errors import ConfirmationError
from incident.templates import TemplateRenderer
from incident.runbook import (
    CNI_FAILURE,
    CONTROL_PLANE,
    DNS_CASCADE,
    IP_EXHAUSTION,
    NODE_FAILURE,
    PATTERNS,
    RECOVERY_ORDER,
    SINGLE_WORKLOAD,
    SYSTEM_NAMESPACE,
    THRESHOLDS,
    Thresholds,
    layer_index,
)
from incident.verdict import decide

REFUSALS = "refusals.slack.j2"
"""The template of the refusals of a plan step's button."""

MAX_TARGETS = 3
"""At most this many objects per rule (three failed nodes → three cordons); the rest after a re-assessment."""
MAX_STEPS = 12
"""A plan lists at most this many steps (Slack shows 25 buttons a block; people read fewer)."""

Facts = Mapping[str, Mapping[str, Any]]
"""The facts of every finished check, by check name."""
Targets = Callable[[Facts], list[tuple[str, dict[str, Any]]]]
"""Evidence → the objects a rule acts on, each with its action parameters."""


def _names(values: Any) -> list[str]:
    """Object names from a fact list: the "… N more" marker and any " (detail)" suffix dropped."""
    out: list[str] = []
    for value in values or ():
        text = str(value)
        if text.startswith("… "):
            continue
        name = text.split(" (", 1)[0].split(" ", 1)[0].strip()
        if name and name not in out:
            out.append(name)
    return out


def failed_nodes(facts: Facts, *, unknown_only: bool = False) -> list[str]:
    """The nodes the nodes check found Unknown (kubelet gone) and, unless ``unknown_only``, NotReady."""
    nodes = facts.get("nodes") or {}
    names = _names(nodes.get("unknown_names"))
    if not unknown_only:
        names += [name for name in _names(nodes.get("not_ready_names")) if name not in names]
    return names[:MAX_TARGETS]


def _cordoned(facts: Facts) -> set[str]:
    return set(_names((facts.get("nodes") or {}).get("cordoned_names")))


def _cordon_targets(facts: Facts) -> list[tuple[str, dict[str, Any]]]:
    return [(node, {}) for node in failed_nodes(facts)]


def _is_cordoned(facts: Facts, node: str) -> bool:
    return node in _cordoned(facts)


def _drain_targets(facts: Facts) -> list[tuple[str, dict[str, Any]]]:
    return [(node, {"grace": None, "timeout": 60}) for node in failed_nodes(facts)]


def _delete_node_targets(facts: Facts) -> list[tuple[str, dict[str, Any]]]:
    return [(node, {}) for node in failed_nodes(facts, unknown_only=True)]


def _daemonset_targets(fact: str) -> Targets:
    def targets(facts: Facts) -> list[tuple[str, dict[str, Any]]]:
        names = [name for name in _names((facts.get("pod_network") or {}).get(fact)) if "/" in name]
        return [(name, {"workload": "daemonset"}) for name in names[:MAX_TARGETS]]

    return targets


def _dns_targets(facts: Facts) -> list[tuple[str, dict[str, Any]]]:
    found = [d for d in (facts.get("dns") or {}).get("deployments") or () if isinstance(d, Mapping)]
    failing = [d for d in found if int(d.get("desired") or 0) > 0 and int(d.get("ready") or 0) < int(d.get("desired") or 0)]
    return [(f"{SYSTEM_NAMESPACE}/{d['name']}", {"workload": "deployment"}) for d in failing[:MAX_TARGETS]]


_WORKLOAD_KINDS = {"Deployment": "deployment", "DaemonSet": "daemonset", "StatefulSet": "statefulset"}


def _crashloop_targets(facts: Facts) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for workload in (facts.get("kube_system") or {}).get("crashlooping_workloads") or ():
        kind, _, name = str(workload).partition("/")
        if kind in _WORKLOAD_KINDS and name:
            out.append((f"{SYSTEM_NAMESPACE}/{name}", {"workload": _WORKLOAD_KINDS[kind]}))
    return out[:MAX_TARGETS]


def _nothing(facts: Facts) -> list[tuple[str, dict[str, Any]]]:
    return [("", {})]


@dataclass(frozen=True)
class StepRule:
    """One step of a pattern's recovery: an action kind and where its targets come from (or a manual step)."""

    kind: str
    """An action kind of :mod:`incident.action_kinds`; ``""`` for a step done outside the bot."""
    targets: Targets
    why: str
    """The runbook's reason, shown beside the step."""
    layer: str = ""
    """For a manual step: the recovery layer it works on (an action's layer comes from its spec)."""
    when_layer: str = ""
    """Only when the pattern's failing layers include this one (the control-plane hierarchy)."""
    already: Callable[[Facts, str], bool] | None = None
    """The evidence shows the step's effect on this target already (a node cordoned by hand): shown done."""


RUNBOOK_STEPS: dict[str, tuple[StepRule, ...]] = {
    NODE_FAILURE.key: (
        StepRule("cordon", _cordon_targets, "Isolate the failed node: nothing new is scheduled there.",
                 already=_is_cordoned),
        StepRule("drain", _drain_targets, "Move its pods away (DaemonSet pods stay; budgets respected)."),
        StepRule("delete-node", _delete_node_targets,
                 "The server is gone: delete the node object so its stuck pods are released and rescheduled."),
    ),
    IP_EXHAUSTION.key: (
        StepRule("restart", _daemonset_targets("cni"),
                 "Restart the CNI pods so ipamd re-reads the free addresses (`kubectl delete pod -l k8s-app=aws-node`, "
                 "one node at a time); free or add subnet addresses if it recurs."),
    ),
    CNI_FAILURE.key: (
        StepRule("restart", _daemonset_targets("failed_daemonsets"),
                 "Restart the CNI DaemonSet; roll back a recent CNI change first if there was one."),
    ),
    DNS_CASCADE.key: (
        StepRule("restart", _dns_targets, "Restore CoreDNS before any application: every lookup fails while it is down."),
    ),
    SINGLE_WORKLOAD.key: (
        StepRule("restart", _crashloop_targets,
                 "Restart the crash-looping component after reading its last logs (`kubectl logs --previous`); "
                 "roll back its last change if it crashes again."),
    ),
    CONTROL_PLANE.key: (
        StepRule("", _nothing, "Bring etcd back to quorum (`etcdctl endpoint health --cluster`) or restore from backup.",
                 layer="etcd", when_layer="etcd"),
        StepRule("", _nothing, "Get kube-apiserver answering /readyz (its logs, certificates, etcd connectivity; "
                 "on a managed cluster, the provider's support).", layer="apiserver", when_layer="apiserver"),
        StepRule("", _nothing, "Restart kube-scheduler / kube-controller-manager once the apiserver answers.",
                 layer="scheduler/controller-manager", when_layer="scheduler/controller-manager"),
    ),
}
"""The runbook's recovery steps per pattern key, in the order the runbook does them."""


@dataclass(frozen=True)
class PlanStep:
    """One step of a plan: what to do (an action or a manual step), on what, why, and where it stands."""

    number: int
    """1, 2, … in recovery order (the button's identity together with the assessment's ref)."""
    pattern: str
    pattern_title: str
    layer: str
    kind: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    done: bool = False
    """It already succeeded in this incident (an audit entry with this very description)."""

    @property
    def manual(self) -> bool:
        return not self.kind

    @property
    def description(self) -> str:
        """The command it runs (``cordon node kwok-node-1``); the manual step's text otherwise."""
        if self.manual:
            return self.why
        return action_specs().get(self.kind).describe(self.target, self.params)

    @property
    def layer_title(self) -> str:
        return next((layer.title for layer in RECOVERY_ORDER if layer.key == self.layer), self.layer)


@dataclass(frozen=True)
class RecoveryPlan:
    """The ordered steps of one assessment (``ref``: the assessment's id on the timeline)."""

    ref: str
    steps: tuple[PlanStep, ...] = ()

    @property
    def open_steps(self) -> tuple[PlanStep, ...]:
        return tuple(step for step in self.steps if not step.done)

    @property
    def current_layer(self) -> str | None:
        """The lowest layer with an open step: the one being recovered now."""
        open_steps = self.open_steps
        return open_steps[0].layer if open_steps else None

    @property
    def primary(self) -> PlanStep | None:
        """The one step offered first: the first open step of the lowest unrecovered layer, if the bot can do it."""
        open_steps = self.open_steps
        if not open_steps or open_steps[0].manual:
            return None
        return open_steps[0]

    def waits_for(self, step: PlanStep) -> str:
        """The layer title ``step`` waits for (``""``: it may run now, after the steps before it in its layer)."""
        current = self.current_layer
        if step.done or current is None or layer_index(step.layer) <= layer_index(current):
            return ""
        return next(layer.title for layer in RECOVERY_ORDER if layer.key == current)

    def offered(self) -> tuple[PlanStep, ...]:
        """The steps shown as buttons: the open, non-manual steps of the current layer, primary first."""
        current = self.current_layer
        return tuple(step for step in self.open_steps if not step.manual and step.layer == current)

    def step(self, number: int) -> PlanStep | None:
        return next((step for step in self.steps if step.number == number), None)


def facts_of(checks: Iterable[CheckResult]) -> dict[str, Mapping[str, Any]]:
    """The facts of the finished checks, by name (an unfinished check says nothing about targets)."""
    return {check.name: check.facts for check in checks if check.finished}


def episode_starts(points: Iterable[tuple[float, Iterable[str]]], current: Iterable[str], now: float) -> dict[str, float]:
    """When each pattern of ``current`` started to be seen without a break, from earlier assessments
    ``(when, pattern keys)`` in order; a pattern new in ``current`` starts ``now``."""
    starts: dict[str, float] = {}
    for at, keys in points:
        seen = set(keys)
        for key in list(starts):
            if key not in seen:
                del starts[key]  # it cleared: a later match is a new episode
        for key in seen:
            starts.setdefault(key, at)
    return {key: starts.get(key, now) for key in current}


def build_plan(assessment: Assessment, ref: str, done: Mapping[str, float] | Iterable[str] = (),
               episodes: Mapping[str, float] | None = None) -> RecoveryPlan:
    """The recovery plan of one assessment.

    ``done``: descriptions of actions that succeeded, with when (a plain iterable: done whenever);
    ``episodes``: when each pattern's current episode started (:func:`episode_starts`). A step counts as
    done only if it succeeded during its pattern's current episode: DNS that breaks again after it
    recovered is offered the restart again.
    """
    done_at = dict(done) if isinstance(done, Mapping) else {key: float("inf") for key in done}
    episodes = episodes or {}
    facts = facts_of(assessment.checks)
    specs = action_specs()
    raw: list[tuple[int, int, int, PlanStep]] = []
    seen: set[str] = set()
    for pattern_rank, match in enumerate(assessment.verdict.patterns):
        for rule_rank, rule in enumerate(RUNBOOK_STEPS.get(match.key, ())):
            if rule.when_layer and rule.when_layer not in (match.layers or (match.layer,)):
                continue
            for target, params in rule.targets(facts):
                if rule.kind:
                    spec = specs.get(rule.kind)
                    layer = min(spec.layer_of(target), match.layer, key=layer_index)
                    key = spec.describe(target, params)
                else:
                    layer, key = rule.layer or match.layer, rule.why
                if key in seen:
                    continue
                seen.add(key)
                finished = done_at.get(key)
                done = bool(rule.kind) and (
                    (finished is not None and finished >= episodes.get(match.key, float("-inf")))
                    or bool(rule.already and rule.already(facts, target)))
                step = PlanStep(0, match.key, match.title, layer, rule.kind, target, dict(params), rule.why, done=done)
                raw.append((layer_index(layer), pattern_rank, rule_rank, step))
    raw.sort(key=lambda item: item[:3])
    steps = tuple(PlanStep(number, s.pattern, s.pattern_title, s.layer, s.kind, s.target, s.params, s.why, s.done)
                  for number, (*_, s) in enumerate(raw[:MAX_STEPS], start=1))
    return RecoveryPlan(ref, steps)


def plan_step(plan: RecoveryPlan, number: int, kind: str, target: str, templates: TemplateRenderer) -> PlanStep:
    """The step a button names, checked against the plan rebuilt from the stored assessment.

    A button whose step number, kind or target does not match is refused (a forged or garbled value),
    and so is a step already done or one whose layer waits for a lower one (the refusals are macros of
    ``templates/refusals.slack.j2``).
    """
    def refusal(macro: str, hint: str, **arguments: Any) -> ConfirmationError:
        return ConfirmationError(templates.macro(REFUSALS, macro, **arguments), hint=templates.macro(REFUSALS, hint))

    step = plan.step(number)
    if step is None or step.manual or step.kind != kind or step.target != target:
        raise refusal("step_not_in_plan", "step_not_in_plan_hint")
    if step.done:
        raise refusal("step_already_done", "step_already_done_hint", number=step.number, description=step.description)
    waiting = plan.waits_for(step)
    if waiting:
        raise refusal("step_waits", "step_waits_hint", number=step.number, waiting=waiting)
    return step


# -- what a step changed -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    """Two assessments compared: patterns and failing checks that cleared, stayed, or are new."""

    cleared: tuple[str, ...]
    still_failing: tuple[str, ...]
    new: tuple[str, ...]
    worse: bool
    """New failures, or a lower recovery layer broke: the step is flagged and its undo offered."""
    healthy: bool

    @property
    def helped(self) -> bool:
        return bool(self.cleared) and not self.worse


def _failing(assessment: Assessment) -> dict[str, str]:
    """Names of what fails, each with its recovery layer: matched patterns, then failing checks."""
    out: dict[str, str] = {}
    explained: set[str] = set()
    for match in assessment.verdict.patterns:
        out[match.title] = match.layer
        explained |= {signal.check for pattern in PATTERNS if pattern.key == match.key for signal in pattern.signals}
    for check in assessment.checks:
        if check.status == "fail" and check.name not in explained:
            out.setdefault(f"{check.title or check.name} check", "applications")
    return out


def _lowest(layers: Iterable[str]) -> int:
    return min((layer_index(layer) for layer in layers), default=len(RECOVERY_ORDER))


def delta(before: Assessment, after: Assessment) -> Delta:
    """What changed between the assessment a step was planned from and the one after it."""
    was, now = _failing(before), _failing(after)
    cleared = tuple(name for name in was if name not in now)
    still = tuple(name for name in was if name in now)
    new = tuple(name for name in now if name not in was)
    lower_broke = _lowest(now.values()) < _lowest(was.values())
    return Delta(cleared, still, new, worse=bool(new) or lower_broke, healthy=after.verdict.scope == "healthy")


# -- the early look after a step ----------------------------------------------------------------------

ALWAYS_FIRST = ("apiserver",)
"""Checks every early look runs: whether the API server answers decides whether anything else can."""


def deciding_checks(pattern: str) -> tuple[str, ...]:
    """The checks whose facts decide ``pattern`` (its signals', from the runbook), with :data:`ALWAYS_FIRST`."""
    names = list(ALWAYS_FIRST)
    for known in PATTERNS:
        for signal in known.signals if known.key == pattern else ():
            if signal.check not in names:
                names.append(signal.check)
    return tuple(names)


@dataclass(frozen=True)
class EarlyDelta:
    """What the first checks after a step say about its pattern: cleared or still failing (the rest still run)."""

    pattern_title: str
    checks: tuple[str, ...]
    """The titles of the checks that ran."""
    cleared: bool
    still_failing: tuple[str, ...]
    """The failing checks among them (what still points at the pattern, or anything else they see)."""
    unfinished: tuple[str, ...] = ()
    """Checks of the early look that did not finish: the look cannot clear the pattern."""


def early_delta(pattern: str, first: Sequence[CheckResult], thresholds: Thresholds = THRESHOLDS) -> EarlyDelta:
    """The early look: is ``pattern`` still matched by the checks that decide it (the verdict's own rules)?"""
    results = list(first)
    title = next((known.title for known in PATTERNS if known.key == pattern), pattern)
    verdict = decide(results, thresholds=thresholds)
    unfinished = tuple(r.title or r.name for r in results if not r.finished)
    matched = any(match.key == pattern for match in verdict.patterns)
    failing = tuple(r.title or r.name for r in results if r.status == "fail")
    return EarlyDelta(title, tuple(r.title or r.name for r in results), cleared=not matched and not unfinished,
                      still_failing=failing, unfinished=unfinished)


# -- node restore ---------------------------------------------------------------------------------------

SYSTEM_TAINT_PREFIXES: tuple[str, ...] = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/")
"""Taints the node lifecycle controller and the cloud provider set and clear themselves (unreachable,
not-ready, uninitialized…): recorded but never re-applied, or a restored node would stay unschedulable."""


SYSTEM_LABELS: frozenset[str] = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os", "node.kubernetes.io/instance-type"})
SYSTEM_LABEL_PREFIXES: tuple[str, ...] = ("beta.kubernetes.io/", "topology.kubernetes.io/",
                                          "failure-domain.beta.kubernetes.io/", "topology.k8s.aws/")
"""Labels the kubelet and the cloud provider set on registration (a replacement has its own hostname, zone and
instance type): never re-applied. ``node-role.kubernetes.io/…`` is not among them — the kubelet may not set it."""


def restore_params(labels: Mapping[str, str], taints: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What ``restore node`` re-applies from a deleted node: the labels and taints people set, not the system's."""
    kept = [{"key": str(t.get("key")), "value": str(t.get("value") or ""), "effect": str(t.get("effect"))}
            for t in taints if not str(t.get("key") or "").startswith(SYSTEM_TAINT_PREFIXES)]
    ours = {str(k): str(v) for k, v in sorted(labels.items())
            if k not in SYSTEM_LABELS and not str(k).startswith(SYSTEM_LABEL_PREFIXES)}
    return {"labels": ours, "taints": kept}
