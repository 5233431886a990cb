"""Readiness probes of the bot's dependencies, for ``/readyz`` (the Slack surface asks, this layer knows how).

Each probe raises on failure; ``/readyz`` reports the exception's type and message per dependency.
"""

from __future__ import annotations

from typing import Any

from service.context import Context

KUBE_READY_TIMEOUT_SECONDS = 3.0


class KubeProbe:
    """A cheap ``GET /version`` with a short timeout, through the configured kubeconfig or in-cluster;
    the client is built on first use and kept (a probe every few seconds must not re-read the kubeconfig)."""

    def __init__(self, services: Context) -> None:
        self.services = services
        self._api: Any = None

    def __call__(self) -> None:
        from kubernetes import client as k8s

        from kube.client import build_api_client

        if self._api is None:
            self._api = build_api_client(self.services.settings)
        k8s.VersionApi(self._api).get_code(_request_timeout=KUBE_READY_TIMEOUT_SECONDS)
