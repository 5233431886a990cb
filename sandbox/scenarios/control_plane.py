"""Control plane scenarios: kube-apiserver stopped, or slow / unreachable behind :class:`sandbox.proxy.FaultProxy`.

These need the cluster or the proxy rather than an API client; ``apply()`` accepts (and ignores) an
``api`` argument so they fit the same :class:`~sandbox.scenarios.Scenario` shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from kubernetes import client as k8s

from sandbox.cluster import LocalCluster
from sandbox.objects import Handle, ScenarioError
from sandbox.proxy import FaultProxy


@dataclass
class ApiserverDown:
    """kube-apiserver stopped (connection refused); undo starts it again and waits for ``/readyz``."""

    cluster: LocalCluster
    name: ClassVar[str] = "apiserver-down"

    def apply(self, api: k8s.ApiClient | None = None) -> Handle:
        self.cluster.stop_apiserver()
        handle = Handle(self.name, f"kube-apiserver at {self.cluster.server} is stopped")
        handle.on_undo("start kube-apiserver", self.cluster.start_apiserver)
        return handle


@dataclass
class SlowApiserver:
    """Every request through ``proxy`` waits ``latency`` seconds before reaching the apiserver."""

    proxy: FaultProxy
    latency: float = 2.0
    name: ClassVar[str] = "apiserver-slow"

    def apply(self, api: k8s.ApiClient | None = None) -> Handle:
        self.proxy.set_latency(self.latency)
        handle = Handle(self.name, f"apiserver behind {self.proxy.url} answers {self.latency:.1f} s late")
        handle.on_undo("remove proxy latency", lambda: self.proxy.set_latency(0.0))
        return handle


@dataclass
class ApiserverUnreachable:
    """The proxy refuses connections (``mode="refuse"``) or swallows them (``mode="blackhole"``)."""

    proxy: FaultProxy
    mode: str = "refuse"
    name: ClassVar[str] = "apiserver-unreachable"
    _modes: dict[str, str] = field(default_factory=lambda: {"refuse": "refuses connections", "blackhole": "never answers"})

    def apply(self, api: k8s.ApiClient | None = None) -> Handle:
        if self.mode not in self._modes:
            raise ScenarioError(f"unknown mode {self.mode!r}; use one of {sorted(self._modes)}")
        self.proxy.refuse() if self.mode == "refuse" else self.proxy.blackhole()
        handle = Handle(self.name, f"apiserver behind {self.proxy.url} {self._modes[self.mode]}")
        handle.on_undo("heal the proxy", self.proxy.heal)
        return handle
