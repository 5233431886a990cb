"""The agent of one cluster: an RQ worker inside that cluster, on that cluster's queues only, with no Slack token.

``k8s-incident-bot agent --cluster prod-eu`` runs where the cluster's ServiceAccount is (``KUBE_IN_CLUSTER``),
connects outbound to Redis only and serves the queues of that cluster's cluster-bound jobs
(``actions@prod-eu``, ``assess@prod-eu``: assessments, validations, dry-runs, the serialized actions, a deleted
node's return watch and rebalance check). Nothing
outside the cluster ever connects to its apiserver. It holds no Slack token: what it has to say goes into
the durable outbox in Redis, and the bot's drainers send it (:class:`service.assessment.OutboxTarget`,
:func:`service.fleet.agent_runtime`).

It heartbeats into Redis (:func:`service.fleet.agent_beat`) every time RQ heartbeats — each idle dequeue
timeout and each job-monitoring tick — tuned so that at least three beats fall in the window
(``AGENT_HEARTBEAT_SECONDS``). The bot answers requests for a cluster whose agent was not seen within the
window at once (:func:`service.fleet.require_reachable`).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from incident.clusters import NAME_RULE, load_registry, valid_name
from incident.errors import ConfigError
from incident.settings import Settings
from service import fleet
from service.context import Context
from service.jobs import CLUSTER_QUEUE_KINDS, cluster_queues
from workers.run import MAINTENANCE_INTERVAL_SECONDS, MeasuredWorker, start_observed

log = logging.getLogger(__name__)


class AgentWorker(MeasuredWorker):
    """A measured RQ worker that also writes its cluster's agent heartbeat whenever RQ heartbeats."""

    agent_context: Context | None = None
    agent_cluster: str = ""

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if self.agent_context is not None:
            fleet.agent_beat(self.agent_context, self.agent_cluster, socket.gethostname(), os.getpid(), pipeline)


def agent_problems(settings: Settings, cluster: str) -> list[str]:
    """Why this process may not be the agent of ``cluster`` (empty: it may)."""
    problems = []
    if not valid_name(cluster):
        problems.append(f"--cluster {cluster!r} is not a cluster name ({NAME_RULE})")
    for name in ("slack_bot_token", "slack_app_token", "slack_signing_secret"):
        if getattr(settings, name) is not None:
            problems.append(f"{name.upper()} is set: an agent never holds Slack credentials (its results go through "
                            "the outbox in Redis); remove it from the agent's environment")
    if settings.clusters_file is not None and valid_name(cluster):
        registry = load_registry(settings)
        if cluster not in registry:
            problems.append(f"cluster {cluster!r} is not in CLUSTERS_FILE ({', '.join(registry.names)})")
        elif not registry.get(cluster).is_agent:
            problems.append(f"cluster {cluster!r} is central in CLUSTERS_FILE: the central workers serve it, "
                            "not an agent (set `mode: agent` there)")
    return problems


def beat_timing(window_seconds: int) -> tuple[int, int]:
    """RQ's ``worker_ttl`` (its idle dequeue timeout is that − 15 s) and job-monitoring interval for ≥ 3 beats a window."""
    every = max(1, window_seconds // 3)
    return every + 15, every


def run_agent(settings: Settings, cluster: str, *, burst: bool = False) -> int:
    """Serve ``cluster``'s queues until stopped; returns an exit code."""
    problems = agent_problems(settings, cluster)
    if problems:
        raise ConfigError(problems)
    # The work horses load their settings from the environment: this is the cluster they act on.
    os.environ["CLUSTER_NAME"] = cluster
    settings = settings.model_copy(update={"cluster_name": cluster})
    start_observed(settings, burst=burst)
    context = Context.from_settings(settings)
    keys = context.keys
    AgentWorker.kinds = {keys.cluster_queue_name(kind, cluster): kind for kind in CLUSTER_QUEUE_KINDS}
    AgentWorker.agent_context, AgentWorker.agent_cluster = context, cluster
    worker_ttl, monitoring = beat_timing(settings.agent_heartbeat_seconds)
    worker = AgentWorker(cluster_queues(settings, cluster), connection=context.redis,
                         maintenance_interval=MAINTENANCE_INTERVAL_SECONDS, worker_ttl=worker_ttl,
                         job_monitoring_interval=monitoring)
    fleet.agent_beat(context, cluster, socket.gethostname(), os.getpid())
    log.info("agent of cluster %s serving %s", cluster, ", ".join(q.name for q in worker.queues))
    worker.work(with_scheduler=not burst, burst=burst, logging_level=settings.log_level)
    return 0
