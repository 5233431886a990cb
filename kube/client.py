"""Access to the Kubernetes API for the assessment: one ApiClient from settings, JSON GETs, paginated LISTs.

Responses are read as plain JSON (``dict``) rather than deserialized into the client's model classes:
that is many times faster for 10,000 pods, and the checks only need a few fields. A LIST is a
:class:`ListStream`: it goes page by page (``limit`` + ``continue``), fetching the next page in a
helper thread while the caller folds the current one into its facts, so a LIST holds one decoded page
and at most two raw ones (the next, waiting; the one after, arriving) whatever the cluster's size, and
the apiserver's work on page *n + 1* overlaps the check's work on page *n*. Continue tokens are
sequential, so one LIST is not split further: the LISTs that grow with the cluster are cluster-scoped
(nodes) or live in one namespace (node Leases, kube-system pods), so a per-namespace split would not
divide them, and the cluster-wide ones (Pending pods, Warning events) are filtered by the apiserver.
The parallelism is across LISTs: every check runs in its own thread, a check's independent LISTs run
side by side, and a LIST several checks need is read once (:class:`SharedList`).

Every LIST says how fresh it must be (:data:`CONSISTENT` or :data:`CACHED`, see :class:`ListRequest`)
and may ask for metadata only. Every request carries a timeout (``KUBE_REQUEST_TIMEOUT_SECONDS``,
shortened to the caller's deadline); a stream stops at its own deadline and says how far it got, so a
check can report partial evidence instead of nothing. Every failure is mapped to :mod:`incident.errors`
in :func:`cluster_error`. Bytes received are counted per request (the benchmark reports them).
Used by ``kube/checks/*``, ``kube/assessor.py`` and ``bench/``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlparse

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from incident.errors import ClusterError, ClusterUnreachable, NotPermitted, ObjectNotFound, plain_error_text
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
        raise ClusterError(plain_error_text("kubeconfig_unloadable", error=error),
                           hint=plain_error_text("kubeconfig_unloadable_hint")) from error
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
            return ClusterUnreachable(plain_error_text("connection_failed", what=what,
                                                       reason=reason.splitlines()[-1] if reason else ""))
        if status == 404:
            return ObjectNotFound(plain_error_text("not_found", what=what))
        if status in (401, 403):
            return NotPermitted(plain_error_text("forbidden", what=what, status=status),
                                hint=plain_error_text("forbidden_hint"))
        return ClusterError(plain_error_text("http_error", what=what, status=status, reason=reason))
    if isinstance(error, (urllib3.exceptions.HTTPError, OSError, TimeoutError)):
        return ClusterUnreachable(plain_error_text("unreachable", what=what, reason=_transport_reason(error)))
    return ClusterError(plain_error_text("client_failure", what=what, kind=type(error).__name__, error=error))


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


Freshness = Literal["consistent", "cached"]
CONSISTENT: Freshness = "consistent"
"""No ``resourceVersion``: the apiserver's current state (a quorum read; Kubernetes ≥ 1.31 serves it from
its watch cache after checking with etcd that the cache is up to date). Fails, rather than answering
from memory, when etcd cannot confirm it — the right thing for evidence about *now*."""
CACHED: Freshness = "cached"
"""``resourceVersion=0``: whatever the apiserver's watch cache holds, no etcd round trip; may lag etcd
by the cache's delay (normally milliseconds, more under an overloaded or partitioned etcd), and keeps
answering from memory when etcd does not. But the watch cache serves such a LIST **whole, ignoring
``limit``** (measured on v1.36: ``limit=500`` returned all 1,003 nodes in one response), so memory is
no longer bounded by a page: only for LISTs that stay small in any cluster and where a slightly old
answer is as good (PodDisruptionBudgets)."""
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json;q=0.9"
"""``Accept`` for a metadata-only LIST (``PartialObjectMetadataList``: names, labels, owners, no spec/status)."""
STOP_RESERVE_S = 1.0
"""A stream stops reading this long before its view's deadline, so the check can still report what it saw."""
ABANDONED_AFTER_S = 60.0
"""Without a deadline, a page nobody takes for this long is dropped and the read-ahead thread ends."""


@dataclass(frozen=True)
class ListRequest:
    """One LIST: path, server-side filters, how fresh it must be, and whether metadata alone will do."""

    path: str
    label_selector: str | None = None
    field_selector: str | None = None
    freshness: Freshness = CONSISTENT
    metadata_only: bool = False

    def params(self, limit: int, token: str | None) -> dict[str, Any]:
        """Query parameters of one page; ``resourceVersion`` only on the first (the API forbids it with ``continue``)."""
        params: dict[str, Any] = {"labelSelector": self.label_selector, "fieldSelector": self.field_selector,
                                  "limit": limit, "continue": token}
        if token is None and self.freshness == CACHED:
            params["resourceVersion"] = "0"
        return params

    def describe(self) -> str:
        filters = [f for f in (self.label_selector, self.field_selector) if f]
        return self.path + (f" ({', '.join(filters)})" if filters else "")


@dataclass(frozen=True)
class RequestRecord:
    """One request as the benchmark sees it: which check made it, what it asked, what came back."""

    label: str
    path: str
    params: dict[str, Any]
    accept: str
    bytes: int
    seconds: float


@dataclass(frozen=True)
class Response:
    """An apiserver answer read in full: status, body, and the server's clock (``Date``)."""

    status: int
    body: bytes
    server_time: datetime | None
    elapsed_s: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> dict[str, Any]:
        return json.loads(self.body) if self.body else {}


class KubeApi:
    """JSON access to the apiserver with a request timeout and an optional deadline.

    ``with_deadline(t)`` returns a view whose requests never outlive the monotonic time ``t``.
    """

    def __init__(self, api: k8s.ApiClient, request_timeout: float = 30.0, deadline: float | None = None,
                 page_size: int = THRESHOLDS.page_size, *, label: str = "", recorder: list[RequestRecord] | None = None) -> None:
        self.api = api
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.page_size = page_size
        self.label = label
        self.recorder = recorder
        """When set, every request is appended as a :class:`RequestRecord` (the benchmark reads them)."""
        self.requests = 0
        self.bytes_received = 0
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

    def with_deadline(self, deadline: float | None, label: str = "") -> "KubeApi":
        """A view for one check: same client, requests cut at ``deadline``, recorded under ``label``."""
        return KubeApi(self.api, self.request_timeout, deadline, self.page_size, label=label or self.label,
                       recorder=self.recorder)

    def timeout(self, cap: float | None = None) -> float:
        """Seconds the next request may take: the request timeout, capped by ``cap`` and the deadline."""
        timeout = self.request_timeout if cap is None else min(cap, self.request_timeout)
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ClusterUnreachable(plain_error_text("deadline_passed"))
            timeout = min(timeout, remaining)
        return max(timeout, 0.05)

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None,
            accept_status: tuple[int, ...] = (), accept: str = "application/json, */*") -> Response:
        """GET ``path`` and read the whole body; non-2xx raises unless listed in ``accept_status``."""
        query = [(key, value) for key, value in (params or {}).items() if value not in (None, "")]
        method, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": accept}, auth_settings=["BearerToken"])
        started = time.monotonic()
        self.requests += 1
        try:
            response = self.api.call_api(method, url, header_params=headers, _request_timeout=self.timeout(timeout))
            body = response.read()
        except Exception as error:  # noqa: BLE001 - mapped to the bot's hierarchy in one place
            raise cluster_error(error, f"GET {path}") from error
        elapsed = time.monotonic() - started
        body = body if isinstance(body, bytes) else str(body or "").encode()
        self.bytes_received += len(body)
        if self.recorder is not None:
            self.recorder.append(RequestRecord(self.label, path, dict(params or {}), accept, len(body), elapsed))
        if not (200 <= response.status < 300) and response.status not in accept_status:
            error = ApiException(status=response.status, reason=body[:300].decode("utf-8", "replace") or response.reason)
            raise cluster_error(error, f"GET {path}") from None
        result = Response(response.status, body, _server_time(response.headers), elapsed)
        self.server_time = result.server_time or self.server_time
        return result

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> dict[str, Any]:
        return self.get(path, params, timeout=timeout).json()

    def stream(self, request: ListRequest, *, limit: int | None = None) -> "ListStream":
        """The pages of one LIST, fetched one ahead; see :class:`ListStream`."""
        return ListStream(self, request, limit or self.page_size)

    def list_pages(self, path: str, *, label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, freshness: Freshness = CONSISTENT) -> Iterator[dict[str, Any]]:
        """Every page of a LIST, one after the other in this thread (no read-ahead); each page is the decoded list."""
        request = ListRequest(path, label_selector, field_selector, freshness)
        token: str | None = None
        while True:
            page = self.get_json(path, request.params(limit or self.page_size, token))
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def list_items(self, path: str, *, label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, freshness: Freshness = CONSISTENT) -> Iterator[dict[str, Any]]:
        """Every item of a LIST, streamed page by page with the next page read ahead."""
        yield from self.stream(ListRequest(path, label_selector, field_selector, freshness), limit=limit).items()

    def close(self) -> None:
        self.api.close()


@dataclass
class _Page:
    body: bytes
    server_time: datetime | None
    remaining: int | None


_DECODER = json.JSONDecoder()


def list_metadata(body: bytes) -> dict[str, Any]:
    """The ``metadata`` of a list response (continue token, remaining count) without decoding its items.

    The apiserver writes ``metadata`` before ``items``; the stdlib decoder reads just that object from
    where it starts. Anything unexpected falls back to decoding the whole body.
    """
    head = body[:4096].decode("utf-8", "replace")
    key = head.find('"metadata":')
    items = head.find('"items":')
    if key >= 0 and (items < 0 or key < items):
        try:
            value, _ = _DECODER.raw_decode(head, key + len('"metadata":'))
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
    return dict((json.loads(body) if body else {}).get("metadata") or {})


_DEADLINE = object()
"""What :func:`_next_before` returns when the deadline came first."""


def _next_before(source: "queue.Queue[Any]", stop_at: float | None) -> Any:
    """The next item of ``source``, or :data:`_DEADLINE` once ``stop_at`` (``time.monotonic()``) has passed."""
    wait = None if stop_at is None else stop_at - time.monotonic()
    if wait is not None and wait <= 0:
        return _DEADLINE
    try:
        return source.get(timeout=wait)
    except queue.Empty:
        return _DEADLINE


@dataclass
class _Failure:
    error: ClusterError


class ListStream:
    """The pages of one LIST: read ahead by one in a helper thread, stopped at the deadline, with its coverage.

    Iterate :meth:`items` (or :meth:`pages`). The first page's failure raises (nothing was seen); a later
    page's failure, or reaching the deadline, ends the iteration early and leaves :attr:`cut` saying why,
    with :attr:`seen` and :attr:`total_estimate` saying how far it got — the caller's facts are then partial.
    :attr:`snapshot_time` is the apiserver's clock at the first page: every page of a LIST shows the
    cluster as of that page's resource version, so ages must be measured against it, not against the
    (later) clock of the last page.
    """

    def __init__(self, kube: KubeApi, request: ListRequest, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.stop_at = None if kube.deadline is None else kube.deadline - min(STOP_RESERVE_S, _budget(kube) / 4)
        self._kube = kube.with_deadline(self.stop_at)
        self.snapshot_time: datetime | None = None
        self.seen = 0
        self.pages_read = 0
        self.remaining: int | None = None
        self.cut: str | None = None
        self.complete = False
        self._started = False
        self._queue: queue.Queue[_Page | _Failure | None] = queue.Queue(maxsize=1)
        self._stop = threading.Event()

    @property
    def total_estimate(self) -> int | None:
        """Items seen plus the apiserver's ``remainingItemCount`` (only sent for LISTs without selectors)."""
        return None if self.remaining is None else self.seen + self.remaining

    def coverage(self) -> str:
        """``"1,500 of about 5,003"`` / ``"1,500 (more not read)"`` / ``"5,003"``."""
        if self.complete:
            return f"{self.seen:,}"
        total = self.total_estimate
        return f"{self.seen:,} of about {total:,}" if total is not None else f"{self.seen:,} (more not read)"

    def _fetch(self) -> None:
        token: str | None = None
        try:
            while not self._stop.is_set():
                headers = METADATA_ONLY if self.request.metadata_only else "application/json, */*"
                response = self._kube.get(self.request.path, self.request.params(self.limit, token), accept=headers)
                metadata = list_metadata(response.body)
                remaining = metadata.get("remainingItemCount")
                # The page travels as bytes and is decoded by the reader: a page waiting in the queue
                # costs its size, not the 5-10x of its decoded objects.
                self._put(_Page(response.body, response.server_time, int(remaining) if remaining is not None else None))
                del response
                token = metadata.get("continue")
                if not token:
                    break
        except ClusterError as error:
            self._put(_Failure(error))
            return
        except Exception as error:  # noqa: BLE001 - never leave the reader waiting
            self._put(_Failure(cluster_error(error, f"GET {self.request.path}")))
            return
        self._put(None)

    def _put(self, item: _Page | _Failure | None) -> None:
        """Hand a page to the reader; give up once the reader stopped (closed, or its deadline passed)."""
        given_up = (self.stop_at if self.stop_at is not None else time.monotonic() + ABANDONED_AFTER_S) + STOP_RESERVE_S
        while not self._stop.is_set() and time.monotonic() < given_up:
            try:
                self._queue.put(item, timeout=0.25)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Stop reading ahead (the reader is done with this stream, finished or not)."""
        self._stop.set()

    def start(self) -> "ListStream":
        """Begin fetching now (the first page arrives while the caller reads something else); idempotent."""
        if not self._started:
            self._started = True
            threading.Thread(target=self._fetch, name=f"list-{self.request.path.rsplit('/', 1)[-1]}", daemon=True).start()
        return self

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        """The items of each page as it arrives (a stream is read once)."""
        if self.pages_read or self.complete or self.cut:
            raise RuntimeError("a ListStream is read once")
        self.start()
        try:
            while True:
                item = _next_before(self._queue, self.stop_at)
                if item is _DEADLINE:
                    self.cut = "stopped at the deadline"
                    return
                if item is None:
                    self.complete = True
                    return
                if isinstance(item, _Failure):
                    if self.pages_read == 0 and self.cut is None:
                        raise item.error
                    self.cut = item.error.message
                    return
                if self.pages_read == 0:
                    self.snapshot_time = item.server_time
                self.remaining = item.remaining
                items = json.loads(item.body).get("items") or []
                del item
                self.pages_read += 1
                self.seen += len(items)
                yield items
                del items
        finally:
            self._stop.set()

    def items(self) -> Iterator[dict[str, Any]]:
        """Every item, page by page."""
        for page in self.pages():
            yield from page


class SharedList:
    """One LIST read once for several checks: every page goes to every reader, each folding what it needs.

    The assessor creates one per request that more than one check declares (``CheckSpec.shared``); the
    page is decoded once and handed to each reader's queue (one page deep, so the slowest reader sets
    the pace and memory stays at a few pages). Reading starts when every expected reader has subscribed
    (checks subscribe first thing) or after :attr:`gather_s`, whichever is first; a reader that comes
    later gets ``None`` from :meth:`subscribe` and reads a LIST of its own instead of missing pages.
    """

    gather_s = 1.0

    def __init__(self, kube: KubeApi, request: ListRequest, readers: int, limit: int | None = None) -> None:
        self.request = request
        self.readers = readers
        self.stream = kube.stream(request, limit=limit)
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self._started = False
        self._all_in = threading.Event()
        threading.Thread(target=self._pump, name=f"shared-{request.path.rsplit('/', 1)[-1]}", daemon=True).start()

    def subscribe(self, stop_at: float | None) -> "Subscription | None":
        """A reader's view of the shared pages, stopping at ``stop_at``; ``None`` once reading has begun."""
        with self._lock:
            if self._started:
                return None
            subscription = Subscription(self, stop_at)
            self._subscriptions.append(subscription)
            if len(self._subscriptions) >= self.readers:
                self._all_in.set()
            return subscription

    def _pump(self) -> None:
        self._all_in.wait(self.gather_s)
        with self._lock:
            self._started = True
            readers = list(self._subscriptions)
        if not readers:
            return
        try:
            for page in self.stream.pages():
                for reader in readers:
                    reader.offer(page)
                if all(reader.closed for reader in readers):
                    break
        except ClusterError as error:
            for reader in readers:
                reader.offer(_Failure(error))
            return
        for reader in readers:
            reader.offer(None)


class Subscription:
    """One reader's side of a :class:`SharedList`; reads like a :class:`ListStream`."""

    def __init__(self, shared: SharedList, stop_at: float | None) -> None:
        self.shared = shared
        self.request = shared.request
        self.stop_at = None if stop_at is None else stop_at - STOP_RESERVE_S
        self.closed = False
        self.seen = 0
        self.cut: str | None = None
        self.complete = False
        self._queue: queue.Queue[list[dict[str, Any]] | _Failure | None] = queue.Queue(maxsize=1)

    @property
    def snapshot_time(self) -> datetime | None:
        return self.shared.stream.snapshot_time

    @property
    def total_estimate(self) -> int | None:
        stream = self.shared.stream
        return None if stream.remaining is None else self.seen + stream.remaining

    coverage = ListStream.coverage

    def start(self) -> "Subscription":
        """The shared read starts by itself; here for symmetry with :meth:`ListStream.start`."""
        return self

    def offer(self, item: list[dict[str, Any]] | _Failure | None) -> None:
        """Called by the pump: wait while this reader is a page behind, unless it has stopped reading."""
        given_up = (self.stop_at if self.stop_at is not None else time.monotonic() + ABANDONED_AFTER_S) + STOP_RESERVE_S
        while not self.closed:
            try:
                self._queue.put(item, timeout=0.25)
                return
            except queue.Full:
                if time.monotonic() > given_up:
                    self.closed = True

    def close(self) -> None:
        """This reader is done (finished or not): the pump stops waiting for it."""
        self.closed = True

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        try:
            while True:
                item = _next_before(self._queue, self.stop_at)
                if item is _DEADLINE:
                    self.cut = "stopped at the deadline"
                    return
                if item is None:
                    self.complete = self.shared.stream.complete
                    self.cut = self.shared.stream.cut
                    return
                if isinstance(item, _Failure):
                    if self.seen == 0:
                        raise item.error
                    self.cut = item.error.message
                    return
                self.seen += len(item)
                yield item
        finally:
            self.closed = True

    def items(self) -> Iterator[dict[str, Any]]:
        for page in self.pages():
            yield from page


Pages = ListStream | Subscription
"""What a check reads a LIST through: its own stream or its share of a :class:`SharedList`."""


def _budget(kube: KubeApi) -> float:
    return max(0.0, (kube.deadline or 0.0) - time.monotonic()) if kube.deadline is not None else float("inf")


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
