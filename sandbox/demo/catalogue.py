"""The demo's scenario catalogue: what the panel offers, what the assessment should name, how to undo it.

Each :class:`ScenarioSpec` pairs a runbook failure from :mod:`sandbox.scenarios` (the test bed's
generic, undoable breakages) with the label a person sees and the pattern the bot's verdict should
name (the drill score checks it). :class:`ScenarioPanel` injects and undoes them on the demo's
cluster. The catalogue is the demo's, not the test bed's or the emulator's: the page and
``k8s-incident-bot drill`` read it from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.objects import Handle
from sandbox.scenarios import ApiserverDown, ApiserverUnreachable, CrashLoop, DnsOutage, NodeFailure, PodIpExhaustion, SlowApiserver

if TYPE_CHECKING:
    from sandbox.demo.stack import DemoStack


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario offered by the panel: a label, the pattern the assessment should name, and a factory."""

    key: str
    label: str
    expected_pattern: str
    build: Callable[["DemoStack"], object]


SCENARIOS: dict[str, ScenarioSpec] = {spec.key: spec for spec in (
    ScenarioSpec("node-failure", "Node failure (1 node NotReady, pods stuck Terminating)", "Node failure",
                 lambda stack: NodeFailure(count=1)),
    ScenarioSpec("pod-ip-exhaustion", "Pod IP exhaustion (aws-node, FailedCreatePodSandBox)", "Pod IP exhaustion",
                 lambda stack: PodIpExhaustion()),
    ScenarioSpec("dns-cascade", "DNS cascade (CoreDNS unavailable, no kube-dns endpoints)", "DNS cascade",
                 lambda stack: DnsOutage()),
    ScenarioSpec("crashloop", "kube-system component crash-looping", "crash",
                 lambda stack: CrashLoop()),
    ScenarioSpec("control-plane-slow", "Control plane slow (2 s per request)", "Control plane",
                 lambda stack: SlowApiserver(stack.proxy, latency=2.0)),
    ScenarioSpec("control-plane-unreachable", "Control plane unreachable (connections refused)", "Control plane",
                 lambda stack: ApiserverUnreachable(stack.proxy, mode="refuse")),
    ScenarioSpec("control-plane-down", "kube-apiserver stopped", "Control plane",
                 lambda stack: ApiserverDown(stack.cluster)),
)}


@dataclass
class ScenarioPanel:
    """Injects and undoes scenarios on the demo cluster, one handle per active scenario."""

    stack: "DemoStack"
    active: dict[str, Handle] = field(default_factory=dict)

    def inject(self, key: str) -> str:
        """Break the cluster; returns what was done. Raises KeyError for unknown keys."""
        spec = SCENARIOS[key]
        if key in self.active:
            return f"{spec.label} is already active"
        api = self.stack.cluster.api_client()
        try:
            handle = spec.build(self.stack).apply(api)  # type: ignore[attr-defined]
        finally:
            api.close()
        self.active[key] = handle
        return str(handle.description)

    def undo(self, key: str) -> str:
        handle = self.active.pop(key, None)
        if handle is None:
            return f"{SCENARIOS[key].label} is not active"
        handle.undo()
        return f"undone: {SCENARIOS[key].label}"

    def undo_all(self) -> None:
        for key in list(self.active):
            try:
                self.undo(key)
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
