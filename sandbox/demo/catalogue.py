"""The demo's scenario catalogue: what the panel offers, what the assessment should name, how to undo it.

Each :class:`ScenarioSpec` pairs a runbook failure from :mod:`sandbox.scenarios` (the test bed's
generic, undoable breakages) with the label a person sees and the pattern the bot's verdict should
name (the drill score checks it), and the alerts a real cluster's Prometheus (kube-prometheus' rules)
would fire for it. :class:`ScenarioPanel` injects and undoes them on the demo's cluster, and fires and
resolves their alerts through the demo's real Alertmanager (the panel's *Alerts* part). The catalogue is the demo's, not the test bed's or the emulator's: the page and
``k8s-incident-bot drill`` read it from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.alertmanager import alert
from sandbox.objects import Handle
from sandbox.scenarios import ApiserverDown, ApiserverUnreachable, CrashLoop, DnsOutage, NodeFailure, PodIpExhaustion, SlowApiserver

if TYPE_CHECKING:
    from sandbox.demo.clusters import DemoCluster
    from sandbox.demo.stack import DemoStack

DEFAULT_CLUSTER = "sandbox"
"""The cluster of a panel that names none: the single-cluster demo's."""


@dataclass(frozen=True)
class DemoAlert:
    """One alert a real cluster would fire during a scenario (kube-prometheus' rule name and severity)."""

    name: str
    severity: str
    summary: str
    labels: tuple[tuple[str, str], ...] = ()

    def to_api(self, cluster: str = DEFAULT_CLUSTER) -> dict[str, Any]:
        """As the Prometheus of ``cluster`` posts it to Alertmanager (its ``cluster`` label names the cluster)."""
        return alert(self.name, severity=self.severity, cluster=cluster, summary=self.summary, **dict(self.labels))


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario offered by the panel: a label, the pattern the assessment should name, a factory, its alerts."""

    key: str
    label: str
    expected_pattern: str
    build: Callable[["DemoCluster"], object]
    """The scenario for one demo cluster (its control plane ``plane``, its fault proxy ``proxy``)."""
    alerts: tuple[DemoAlert, ...] = ()


SCENARIOS: dict[str, ScenarioSpec] = {spec.key: spec for spec in (
    ScenarioSpec("node-failure", "Node failure (1 node NotReady, pods stuck Terminating)", "Node failure",
                 lambda site: NodeFailure(count=1), (
                     DemoAlert("KubeNodeNotReady", "warning", "A node has been unready for more than 15 minutes."),
                     DemoAlert("KubeletDown", "critical", "Kubelet has disappeared from Prometheus target discovery."))),
    ScenarioSpec("pod-ip-exhaustion", "Pod IP exhaustion (aws-node, FailedCreatePodSandBox)", "Pod IP exhaustion",
                 lambda site: PodIpExhaustion(), (
                     DemoAlert("KubePodNotReady", "warning", "Pods stuck ContainerCreating: no available IP addresses.",
                               (("namespace", "default"),)),
                     DemoAlert("KubeDeploymentReplicasMismatch", "warning", "Deployment has not matched its replicas.",
                               (("namespace", "default"),)))),
    ScenarioSpec("dns-cascade", "DNS cascade (CoreDNS unavailable, no kube-dns endpoints)", "DNS cascade",
                 lambda site: DnsOutage(), (
                     DemoAlert("CoreDNSDown", "critical", "CoreDNS has disappeared from Prometheus target discovery."),
                     DemoAlert("KubeDeploymentReplicasMismatch", "warning", "coredns has 0 of 2 replicas ready.",
                               (("namespace", "kube-system"), ("deployment", "coredns"))))),
    ScenarioSpec("crashloop", "kube-system component crash-looping", "crash",
                 lambda site: CrashLoop(), (
                     DemoAlert("KubePodCrashLooping", "warning", "A kube-system pod is crash looping.",
                               (("namespace", "kube-system"),)),)),
    ScenarioSpec("control-plane-slow", "Control plane slow (2 s per request)", "Control plane",
                 lambda site: SlowApiserver(site.proxy, latency=2.0), (
                     DemoAlert("KubeAPILatencyHigh", "warning", "The API server has a 99th percentile latency of 2 s."),)),
    ScenarioSpec("control-plane-unreachable", "Control plane unreachable (connections refused)", "Control plane",
                 lambda site: ApiserverUnreachable(site.proxy, mode="refuse"), (
                     DemoAlert("KubeAPIDown", "critical", "KubeAPI has disappeared from Prometheus target discovery."),)),
    ScenarioSpec("control-plane-down", "kube-apiserver stopped", "Control plane",
                 lambda site: ApiserverDown(site.plane), (
                     DemoAlert("KubeAPIDown", "critical", "KubeAPI has disappeared from Prometheus target discovery."),)),
)}


@dataclass
class ScenarioPanel:
    """Injects and undoes scenarios on one demo cluster, one handle per active scenario, and fires their alerts."""

    stack: "DemoStack"
    cluster: str = DEFAULT_CLUSTER
    """The demo cluster this panel breaks (``stack.site(cluster)``) and the ``cluster`` label of its alerts."""
    active: dict[str, Handle] = field(default_factory=dict)
    alerting: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Scenario key → the alerts fired for it (as posted to Alertmanager), until they are resolved."""

    def _on(self, what: str) -> str:
        """``what``, naming this panel's cluster when the demo has several."""
        return f"{what} on {self.cluster}" if self.cluster != DEFAULT_CLUSTER else what

    def fire_alerts(self, key: str) -> str:
        """Post the scenario's alerts to the demo's Alertmanager, as Prometheus would; returns what was fired."""
        spec = SCENARIOS[key]
        if not spec.alerts:
            return f"{spec.label} has no alerts"
        alerts = self.alerting.get(key) or [a.to_api(self.cluster) for a in spec.alerts]
        self.stack.alertmanager.post_alerts(alerts)  # again while firing: as Prometheus re-sends them
        self.alerting[key] = alerts
        return self._on("fired " + ", ".join(f"{a.name} ({a.severity})" for a in spec.alerts))

    def resolve_alerts(self, key: str) -> str:
        alerts = self.alerting.pop(key, None)
        if not alerts:
            return self._on(f"{SCENARIOS[key].label}: no alerts firing")
        self.stack.alertmanager.resolve_alerts(alerts)
        return self._on(f"resolved {len(alerts)} alert(s) of {SCENARIOS[key].label}")

    def inject(self, key: str) -> str:
        """Break the cluster; returns what was done. Raises KeyError for unknown keys."""
        spec = SCENARIOS[key]
        if key in self.active:
            return self._on(f"{spec.label} is already active")
        site = self.stack.site(self.cluster)
        api = site.plane.api_client()
        try:
            handle = spec.build(site).apply(api)  # type: ignore[attr-defined]
        finally:
            api.close()
        self.active[key] = handle
        return self._on(str(handle.description))

    def undo(self, key: str) -> str:
        handle = self.active.pop(key, None)
        if handle is None:
            return self._on(f"{SCENARIOS[key].label} is not active")
        handle.undo()
        return self._on(f"undone: {SCENARIOS[key].label}")

    def undo_all(self) -> None:
        self.alerting.clear()
        for key in list(self.active):
            try:
                self.undo(key)
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
