"""Failure scenarios from the runbook, applied to the local cluster through the real API and undoable.

Each scenario is a small dataclass with ``apply(api) -> Handle``; ``handle.undo()`` restores the cluster.
Objects whose status a scenario writes are taken away from kwok first (node annotation removed, or
pods annotated ``kwok.x-k8s.io/status=custom``), so kwok cannot overwrite the broken state; the real
kube-controller-manager still reacts (node taints, pods marked NotReady, EndpointSlices, PDB status).

- :class:`NodeFailure` — nodes stop reporting: conditions Unknown, stale heartbeat, unreachable
  taints from the node lifecycle controller, their pods stuck Terminating;
- :class:`PodIpExhaustion` — ``aws-node`` present, new pods Pending with ``FailedCreatePodSandBox``;
- :class:`DnsOutage` — CoreDNS 0 ready replicas, ``kube-dns`` without ready endpoints;
- :class:`CrashLoop` — a kube-system component in CrashLoopBackOff with climbing restarts and BackOff events;
- :class:`BlockingPdb` — a PodDisruptionBudget that makes evictions fail with 429;
- :class:`ApiserverDown`, :class:`SlowApiserver`, :class:`ApiserverUnreachable` — control plane gone or slow;
- :class:`Scale` — many nodes and pods for benchmarks.

Used by tests, benchmarks and the demo.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from kubernetes import client as k8s

from sandbox.baseline import install_baseline
from sandbox.objects import Handle, ScenarioError
from sandbox.scenarios.control_plane import ApiserverDown, ApiserverUnreachable, SlowApiserver
from sandbox.scenarios.crashloop import CrashLoop, CrashLoopHandle
from sandbox.scenarios.nodes import NodeFailure
from sandbox.scenarios.scale import Scale
from sandbox.scenarios.workloads import BlockingPdb, DnsOutage, PodIpExhaustion, ip_exhaustion_message

__all__ = [
    "ApiserverDown",
    "ApiserverUnreachable",
    "BlockingPdb",
    "CrashLoop",
    "CrashLoopHandle",
    "DnsOutage",
    "Handle",
    "NodeFailure",
    "PodIpExhaustion",
    "Scale",
    "Scenario",
    "ScenarioError",
    "SlowApiserver",
    "install_baseline",
    "ip_exhaustion_message",
]


class Scenario(Protocol):
    """Anything with a ``name`` that breaks the cluster in ``apply`` and returns an undoable handle."""

    name: ClassVar[str]

    def apply(self, api: k8s.ApiClient) -> Handle: ...
