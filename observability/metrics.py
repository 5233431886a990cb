"""Prometheus metrics of the bot and its workers, and the helpers every module records them with.

A low-level building block: ``bot/``, ``chat/`` and ``workers/`` record through it, and it imports
neither Slack nor Kubernetes (Slack's 429 retry handler that counts rate limits is ``chat.client``'s).

Everything is a ``prometheus_client`` object on one registry (:data:`REGISTRY`), recorded only through
the small functions below so names and label values stay consistent:

- :func:`record_command` — ``/k8s`` commands by name and outcome (the Bolt command listener).
- :func:`record_job` / :func:`job_timer` — RQ job durations by kind (``assess``, ``actions``, …).
- :func:`record_lock_wait` — how long an action waited for the per-cluster action lock.
- :func:`record_slack_error` / :func:`record_slack_rate_limited` — Slack Web API failures and 429s by method
  (``chat.client``).
- :func:`record_verdict` — assessment verdicts by failure pattern.

Queue depths are not recorded: :func:`render` reads them from the RQ queues at scrape time.

The HTTP server (``bot.server``) serves ``/metrics``. RQ workers fork a work horse per job, so a
worker process switches ``prometheus_client`` to multiprocess mode (:func:`enable_multiprocess`) before
anything is recorded and serves the merged view on its own port (:func:`serve_worker_metrics`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from incident.errors import IncidentBotError

NAMESPACE = "k8s_incident_bot"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry(auto_describe=True)
"""Every metric of this process (plus process/platform/GC collectors)."""

ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

COMMANDS = Counter(
    "commands", "Slash commands handled, by command name and outcome (ok, error, rejected, invalid).",
    ["command", "outcome"], namespace=NAMESPACE, registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "job_duration_seconds", "Wall time of RQ jobs, by job kind and outcome (ok, error).",
    ["kind", "outcome"], namespace=NAMESPACE, registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800),
)
ACTION_LOCK_WAIT = Histogram(
    "action_lock_wait_seconds", "Time a risky action waited for the per-cluster action lock.",
    ["cluster"], namespace=NAMESPACE, registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
SLACK_ERRORS = Counter(
    "slack_api_errors", "Slack Web API calls that failed, by method and Slack error code.",
    ["method", "error"], namespace=NAMESPACE, registry=REGISTRY,
)
SLACK_RATE_LIMITED = Counter(
    "slack_api_rate_limited", "HTTP 429 answers from the Slack Web API (each one retried after Retry-After), by method.",
    ["method"], namespace=NAMESPACE, registry=REGISTRY,
)
VERDICTS = Counter(
    "assessment_verdicts", "Assessment verdicts by matched failure pattern and scope (cluster-wide, component).",
    ["pattern", "scope"], namespace=NAMESPACE, registry=REGISTRY,
)
AGENT_DOWN_ANSWERS = Counter(
    "agent_down_answers", "Requests for an agent cluster answered at once because its agent was not seen, by cluster.",
    ["cluster"], namespace=NAMESPACE, registry=REGISTRY,
)
CLUSTER_UNREACHABLE_ANSWERS = Counter(
    "cluster_unreachable_answers", "Requests for a central cluster answered at once because the central workers' last "
    "probe of its apiserver failed, by cluster.", ["cluster"], namespace=NAMESPACE, registry=REGISTRY,
)
AGENT_SEEN_AGE_NAME = f"{NAMESPACE}_agent_seen_age_seconds"
ALERT_NOTIFICATIONS = Counter(
    "alert_notifications", "Alertmanager webhook notifications received, by HTTP status answered (200 accepted).",
    ["status"], namespace=NAMESPACE, registry=REGISTRY,
)
QUEUE_DEPTH_NAME = f"{NAMESPACE}_queue_depth"

QueueDepths = Callable[[], Mapping[str, int]]
"""Returns queue kind → number of waiting jobs; called at scrape time."""


# --- recording helpers ----------------------------------------------------------------------------

def record_command(name: str, outcome: str) -> None:
    """Count one ``/k8s`` command (``name`` e.g. ``incident open``; ``outcome`` ok/error/rejected/invalid)."""
    COMMANDS.labels(command=name or "unknown", outcome=outcome).inc()


def counted_command(name: str, work: Callable[[], str]) -> Callable[[], str]:
    """``work`` that records its command's outcome: ok, rejected (an IncidentBotError for the user) or error."""

    def run() -> str:
        try:
            text = work()
        except IncidentBotError:
            record_command(name, "rejected")
            raise
        except Exception:
            record_command(name, "error")
            raise
        record_command(name, "ok")
        return text

    return run


def record_job(kind: str, seconds: float, outcome: str = "ok") -> None:
    """Record the duration of one RQ job of ``kind``."""
    JOB_DURATION.labels(kind=kind, outcome=outcome).observe(max(0.0, seconds))


@contextmanager
def job_timer(kind: str) -> Iterator[None]:
    """``with job_timer("assess"): ...`` records the block's duration; outcome ``error`` if it raises."""
    started = time.monotonic()
    try:
        yield
    except BaseException:
        record_job(kind, time.monotonic() - started, "error")
        raise
    record_job(kind, time.monotonic() - started, "ok")


def record_lock_wait(cluster: str, seconds: float) -> None:
    """Record how long an action waited before it acquired the action lock of ``cluster``."""
    ACTION_LOCK_WAIT.labels(cluster=cluster).observe(max(0.0, seconds))


def record_slack_error(method: str, code: str) -> None:
    """Count a failed Slack Web API call (``code`` is Slack's error, e.g. ``channel_not_found``)."""
    SLACK_ERRORS.labels(method=method, error=code).inc()


def record_slack_rate_limited(method: str) -> None:
    """Count one HTTP 429 from Slack for ``method``."""
    SLACK_RATE_LIMITED.labels(method=method).inc()


def record_alert_notification(status: str) -> None:
    """Count one request to the Alertmanager intake by the HTTP status it was answered with."""
    ALERT_NOTIFICATIONS.labels(status=status).inc()


def record_verdict(pattern: str, scope: str = "") -> None:
    """Count one assessment verdict (``pattern`` e.g. ``dns-cascade``, ``none``; ``scope`` cluster-wide/component)."""
    VERDICTS.labels(pattern=pattern or "none", scope=scope or "unknown").inc()


def record_agent_down(cluster: str) -> None:
    """Count one request answered "no agent seen" for ``cluster``."""
    AGENT_DOWN_ANSWERS.labels(cluster=cluster).inc()


def record_cluster_unreachable(cluster: str) -> None:
    """Count one request answered "not reachable" for the central cluster ``cluster``."""
    CLUSTER_UNREACHABLE_ANSWERS.labels(cluster=cluster).inc()


def agent_ages_family(ages: Mapping[str, float | None]) -> Metric:
    """Seconds since each agent cluster's agent was last seen (``+Inf``: never, or its record expired)."""
    family = GaugeMetricFamily(AGENT_SEEN_AGE_NAME, "Seconds since each agent cluster's agent last heartbeated "
                               "(+Inf: not seen within the heartbeat window).", labels=["cluster"])
    for cluster, age in sorted(ages.items()):
        family.add_metric([cluster], float("inf") if age is None else float(age))
    return family


# --- exposition ----------------------------------------------------------------------------------

class _ScrapeView:
    """What one scrape of ``/metrics`` returns: the registry, plus queue depths read right now."""

    def __init__(self, registry: Any, queue_depths: QueueDepths | None, extra: Iterable[Metric] = ()) -> None:
        self._registry = registry
        self._queue_depths = queue_depths
        self._extra = list(extra)

    def collect(self) -> Iterable[Metric]:
        yield from self._registry.collect()
        yield from self._extra
        if self._queue_depths is None:
            return
        family = GaugeMetricFamily(QUEUE_DEPTH_NAME, "Jobs waiting in each RQ queue, read at scrape time.",
                                   labels=["queue"])
        for queue, depth in sorted(self._queue_depths().items()):
            family.add_metric([queue], float(depth))
        yield family


def render(queue_depths: QueueDepths | None = None, extra: Iterable[Metric] = ()) -> tuple[bytes, str]:
    """The exposition text of this process (and queue depths, if given) and its content type.

    A failing ``queue_depths`` (Redis down) fails the scrape, which is what Prometheus' ``up`` reports.
    """
    registry: Any = _multiprocess_registry() if multiprocess_enabled() else REGISTRY
    return generate_latest(_ScrapeView(registry, queue_depths, extra)), CONTENT_TYPE_LATEST  # type: ignore[arg-type]


def rq_queue_depths(queues: Callable[[], Mapping[str, Any]]) -> QueueDepths:
    """A :data:`QueueDepths` over RQ queues: ``queues()`` returns queue kind → ``rq.Queue``."""

    def depths() -> dict[str, int]:
        return {kind: int(queue.count) for kind, queue in queues().items()}

    return depths


# --- RQ workers: forked work horses ---------------------------------------------------------------

def multiprocess_enabled() -> bool:
    """Whether this process records into ``PROMETHEUS_MULTIPROC_DIR`` (an RQ worker and its work horses)."""
    return bool(os.environ.get(MULTIPROCESS_ENV))


def enable_multiprocess(directory: Path | None = None) -> Path | None:
    """Switch to multiprocess mode so forked RQ work horses' metrics survive them; returns the directory.

    Returns ``None`` (and logs a warning) if metrics were already recorded in-process (tests).

    Uses ``PROMETHEUS_MULTIPROC_DIR`` if set (emptied first: it belongs to this worker), else a new
    temporary directory. Must run before anything is recorded in this process (every metric here has
    labels, so values are only created on first use); :func:`workers.run.run_worker` calls it first.
    """
    from prometheus_client import values

    recorded = [m for m in (COMMANDS, JOB_DURATION, ACTION_LOCK_WAIT, SLACK_ERRORS, SLACK_RATE_LIMITED, VERDICTS)
                if m._metrics]  # noqa: SLF001 - the only way to know whether a child value exists
    if recorded and not multiprocess_enabled():
        logging.getLogger(__name__).warning(
            "metrics were recorded before multiprocess mode; work horses' metrics will not be collected")
        return None
    existing = os.environ.get(MULTIPROCESS_ENV)
    path = Path(existing) if existing else (directory or Path(tempfile.mkdtemp(prefix="k8sbot-metrics-")))
    path.mkdir(parents=True, exist_ok=True)
    if not recorded:
        for stale in path.glob("*.db"):  # left by an earlier run of this worker
            stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(path)
    values.ValueClass = values.get_value_class()
    return path


def _multiprocess_registry() -> CollectorRegistry:
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def serve_worker_metrics(host: str, port: int) -> None:
    """Serve ``/metrics`` (merged over the worker and its work horses) in a daemon thread."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=_multiprocess_registry() if multiprocess_enabled() else REGISTRY)
