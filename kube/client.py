"""Access to the Kubernetes API for the assessment: one ApiClient from settings, JSON GETs, paginated LISTs.

Responses are read as plain JSON (``dict``) rather than deserialized into the client's model classes:
that is many times faster for 10,000 pods, and the checks only need a few fields. LISTs go page by page
(``limit`` + ``continue``), so a check holds at most one page in memory. Every request carries a timeout
(``KUBE_REQUEST_TIMEOUT_SECONDS``, shortened to the caller's deadline), and every failure is mapped to
:mod:`incident.errors` in :func:`cluster_error`. Used by ``kube/checks/*`` and ``kube/assessor.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from incident.errors import ClusterError, ClusterUnreachable, NotPermitted, ObjectNotFound
from incident.runbook import THRESHOLDS
from incident.settings import Settings

POOL_SIZE = 32
"""Concurrent connections to the apiserver (every check runs in its own thread)."""


def build_api_client(settings: Settings) -> k8s.ApiClient:
    """An ApiClient for the configured cluster: in-cluster service account, or kubeconfig (path, context).

    Raises :class:`ClusterError` when the configuration cannot be loaded.
    """
    return k8s.ApiClient(build_configuration(settings))


def build_configuration(settings: Settings) -> k8s.Configuration:
    """The client configuration behind :func:`build_api_client` (also used by impersonating clients)."""
    configuration = k8s.Configuration()
    try:
        if settings.kube_in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            path = str(settings.kubeconfig.expanduser()) if settings.kubeconfig else None
            k8s_config.load_kube_config(config_file=path, context=settings.kube_context, client_configuration=configuration)
    except (k8s_config.ConfigException, OSError, ValueError) as error:
        raise ClusterError(f"Cannot load the Kubernetes configuration: {error}",
                           hint="Check KUBECONFIG / KUBE_CONTEXT, or set KUBE_IN_CLUSTER=true inside the cluster.") from error
    configuration.connection_pool_maxsize = POOL_SIZE
    # One quick retry of a failed connect; never retry a read that timed out (the deadline would double).
    configuration.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0, backoff_factor=0)
    return configuration


def cluster_error(error: BaseException, what: str) -> ClusterError:
    """The one mapping from client/transport failures to the bot's errors (callers ``raise … from error``)."""
    if isinstance(error, ClusterError):
        return error
    if isinstance(error, ApiException):
        status = error.status or 0
        reason = (error.reason or "").strip()
        if status == 0:  # TLS errors and the like, raised before any HTTP status
            return ClusterUnreachable(f"{what}: {reason.splitlines()[-1] if reason else 'connection failed'}")
        if status == 404:
            return ObjectNotFound(f"{what}: not found")
        if status in (401, 403):
            return NotPermitted(f"{what}: forbidden ({status})",
                                hint="Grant the bot's identity list/get on this resource (see deploy/ RBAC).")
        return ClusterError(f"{what}: HTTP {status} {reason}")
    if isinstance(error, (urllib3.exceptions.HTTPError, OSError, TimeoutError)):
        return ClusterUnreachable(f"{what}: {_transport_reason(error)}")
    return ClusterError(f"{what}: {type(error).__name__}: {error}")


def _transport_reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    if isinstance(reason, urllib3.exceptions.NewConnectionError) or "Connection refused" in text:
        return "connection refused"
    if isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)) or "timed out" in text.lower():
        return "timed out"
    if isinstance(reason, urllib3.exceptions.ProtocolError) or "RemoteDisconnected" in text:
        return "connection dropped"
    return text.splitlines()[0][:200]


@dataclass(frozen=True)
class Response:
    """An apiserver answer read in full: status, body text, and the server's clock (``Date``)."""

    status: int
    text: str
    server_time: datetime | None
    elapsed_s: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.text) if self.text else {}


class KubeApi:
    """JSON access to the apiserver with a request timeout and an optional deadline.

    ``with_deadline(t)`` returns a view whose requests never outlive the monotonic time ``t``.
    """

    def __init__(self, api: k8s.ApiClient, request_timeout: float = 30.0, deadline: float | None = None,
                 page_size: int = THRESHOLDS.page_size, *, label: str = "", recorder: list[tuple[str, str, dict[str, Any]]] | None = None) -> None:
        self.api = api
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.page_size = page_size
        self.label = label
        self.recorder = recorder
        """When set, every request is appended as (label, path, params): the benchmark replays them raw."""
        self.requests = 0
        self.server_time: datetime | None = None
        """The apiserver's clock (``Date`` header) at the last response of this view."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "KubeApi":
        return cls(build_api_client(settings), settings.kube_request_timeout_seconds)

    @property
    def server(self) -> str:
        """The apiserver URL (``https://host:port``)."""
        return str(self.api.configuration.host)

    @property
    def server_address(self) -> tuple[str, int]:
        parsed = urlparse(self.server)
        return parsed.hostname or "localhost", parsed.port or (443 if parsed.scheme == "https" else 80)

    def with_deadline(self, deadline: float, label: str = "") -> "KubeApi":
        """A view for one check: same client, requests cut at ``deadline``, recorded under ``label``."""
        return KubeApi(self.api, self.request_timeout, deadline, self.page_size, label=label or self.label,
                       recorder=self.recorder)

    def timeout(self, cap: float | None = None) -> float:
        """Seconds the next request may take: the request timeout, capped by ``cap`` and the deadline."""
        timeout = self.request_timeout if cap is None else min(cap, self.request_timeout)
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ClusterUnreachable("deadline passed before the request was sent")
            timeout = min(timeout, remaining)
        return max(timeout, 0.05)

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None,
            accept_status: tuple[int, ...] = ()) -> Response:
        """GET ``path`` and read the whole body; non-2xx raises unless listed in ``accept_status``."""
        query = [(key, value) for key, value in (params or {}).items() if value not in (None, "")]
        method, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": "application/json, */*"},
            auth_settings=["BearerToken"])
        started = time.monotonic()
        self.requests += 1
        if self.recorder is not None:
            self.recorder.append((self.label, path, dict(params or {})))
        try:
            response = self.api.call_api(method, url, header_params=headers, _request_timeout=self.timeout(timeout))
            body = response.read()
        except Exception as error:  # noqa: BLE001 - mapped to the bot's hierarchy in one place
            raise cluster_error(error, f"GET {path}") from error
        elapsed = time.monotonic() - started
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        if not (200 <= response.status < 300) and response.status not in accept_status:
            error = ApiException(status=response.status, reason=text[:300] or response.reason)
            raise cluster_error(error, f"GET {path}") from None
        result = Response(response.status, text, _server_time(response.headers), elapsed)
        self.server_time = result.server_time or self.server_time
        return result

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> dict[str, Any]:
        return self.get(path, params, timeout=timeout).json()

    def list_pages(self, path: str, *, label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every page of a LIST (``limit`` + ``continue``); each page is the decoded list object."""
        token: str | None = None
        while True:
            page = self.get_json(path, {"labelSelector": label_selector, "fieldSelector": field_selector,
                                        "limit": limit or self.page_size, "continue": token})
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def list_items(self, path: str, *, label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a LIST, streamed page by page."""
        for page in self.list_pages(path, label_selector=label_selector, field_selector=field_selector, limit=limit):
            yield from page.get("items") or ()

    def close(self) -> None:
        self.api.close()


def _server_time(headers: Mapping[str, str] | None) -> datetime | None:
    value = (headers or {}).get("Date") or (headers or {}).get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return None


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from an API object (``2024-05-01T10:00:00Z`` or with micro-seconds)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
