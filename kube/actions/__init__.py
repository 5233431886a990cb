"""The risky actions against the Kubernetes API: one executor per kind, one module per family.

:class:`KubeExecutor` is the production executor of ``service.actions`` (its ``Executor`` protocol:
``prepare(request)`` validates against the live cluster and dry-runs with ``dryRun=All``, saying in words
what will change; ``execute(request, guard, progress)`` makes the change). It looks the request's kind
up in :func:`default_executors` — ``nodes.EXECUTORS`` (cordon, uncordon, drain, delete node, label,
unlabel, restore node), ``workloads.EXECUTORS`` (restart, scale, delete pod) and ``probes.EXECUTORS``
(probes off, probes restore) — and runs it as one identity: the
bot's own, or (``kube.impersonation``) the Kubernetes user mapped to the requester. What they say is in
``templates/kube_actions.txt.j2``. Which kinds exist
is :mod:`incident.action_kinds`' business; a guard test keeps the two lists equal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kubernetes import client as k8s

from incident.actions import ActionRequest, Outcome
from incident.settings import Settings
from kube.actions import nodes, probes, workloads
from incident.templates import TemplateRenderer, renderer_for
from kube.actions.api import ActionTexts, ClusterApi, Guard, KindExecutor, Progress

__all__ = ["Guard", "KindExecutor", "KubeExecutor", "Progress", "api_client_for", "default_executors"]


def default_executors() -> tuple[KindExecutor, ...]:
    """Every kind's executor, family by family."""
    return (*nodes.EXECUTORS, *workloads.EXECUTORS, *probes.EXECUTORS)


def api_client_for(settings: Settings) -> k8s.ApiClient:
    """The ApiClient of ``kube.client`` (in-cluster or kubeconfig; never retries a read that timed out)."""
    from kube.client import build_api_client

    return build_api_client(settings)


class KubeExecutor:
    """Validates, dry-runs and runs action requests against one cluster, as one identity."""

    def __init__(self, api: k8s.ApiClient, *, request_timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, identity: str | None = None,
                 templates: TemplateRenderer | None = None,
                 executors: Iterable[KindExecutor] | None = None) -> None:
        self.cluster = ClusterApi(api, request_timeout=request_timeout, sleep=sleep, identity=identity,
                                  texts=ActionTexts(templates))
        self._by_kind: dict[str, KindExecutor] = {}
        for executor in default_executors() if executors is None else executors:
            if executor.kind in self._by_kind:
                raise ValueError(f"two executors for action kind {executor.kind!r}")
            self._by_kind[executor.kind] = executor

    @property
    def who(self) -> str:
        return self.cluster.who

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._by_kind)

    @classmethod
    def from_settings(cls, settings: Settings) -> "KubeExecutor":
        return cls(api_client_for(settings), request_timeout=settings.kube_request_timeout_seconds,
                   templates=renderer_for(settings.templates_dir))

    def _for(self, request: ActionRequest) -> KindExecutor:
        try:
            return self._by_kind[request.kind]
        except KeyError:
            raise ValueError(f"no executor for action kind {request.kind!r}") from None

    def prepare(self, request: ActionRequest) -> str:
        """Check against the live cluster and dry-run; the summary of what will change."""
        return self._for(request).prepare(self.cluster, request)

    def execute(self, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
        """Make the change, calling ``guard()`` before every mutating request."""
        return self._for(request).execute(self.cluster, request, guard, progress)
