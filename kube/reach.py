"""Whether a cluster's apiserver answers at all: one cheap ``GET /readyz`` with a short timeout.

The central workers probe each central cluster of the registry this way every ``CLUSTER_PROBE_SECONDS``
(:func:`service.reach.probe_central_clusters`), so the bot can answer a request for an unreachable one at
once instead of queueing a job that would time out. Nothing here knows Redis: the caller records the answer.
"""

from __future__ import annotations

from incident.errors import ClusterError
from incident.settings import Settings
from kube.client import KubeApi, build_api_client

PROBE_PATH = "/readyz"
"""Served to any authenticated (and, by default, anonymous) client; a few bytes, no etcd read of objects."""


def probe(settings: Settings, timeout: float) -> str | None:
    """``None`` if the apiserver of ``settings``'s cluster (its kubeconfig and context) answered ``/readyz`` with
    2xx within ``timeout`` seconds; otherwise why not, in a few words ("GET /readyz: connection refused")."""
    try:
        api = KubeApi(build_api_client(settings), request_timeout=timeout)
    except ClusterError as error:
        return error.message
    try:
        api.get(PROBE_PATH, timeout=timeout)
    except ClusterError as error:
        return error.message
    finally:
        api.close()
    return None
