"""The context of a cluster-bound job, the action runtime of a process without a Slack token (an agent), and
whether a cluster's agent is alive.

A job for cluster X (an assessment, a dry-run, a drain of X's action queue) runs with X's settings
(:meth:`incident.clusters.ClusterRegistry.settings_for`: its name, its kubeconfig context, its allowlists
and impersonation map). In a central worker that is all. In X's agent there is no Slack token: the
actions' notifier is then :class:`OutboxNotifier`, which appends each message, edit and ephemeral to the
durable outbox in Redis; the bot's drainers send them.

An agent's confirmation message is queued, not sent, when ``prepare`` stores its ``ts``: the notifier
returns a placeholder (``outbox:<post id>``) which the drainer records against the real ``ts`` once the
post is sent. Edits queued by the agent name the placeholder and the drainer resolves it (the post went
out earlier in the same channel's FIFO); edits made elsewhere (the bot on Confirm, the central expiry
job) resolve it with :func:`service.outbox.real_ts` first.

An agent cluster's jobs wait in its own queues for its agent. :func:`require_reachable` answers at once
instead when the agent's heartbeat (:class:`persistence.fleet.FleetStore`) is older than
``AGENT_HEARTBEAT_SECONDS``, and for a central cluster when the central workers' last probe of its
apiserver failed (:mod:`service.reach`). It lives here, not in :mod:`service.fleet`, so the lifecycle can ask too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from incident.clusters import Cluster, load_registry
from incident.errors import IncidentBotError
from persistence.fleet import FleetStore, Heartbeat
from service.context import Context
from service.runtime import DEFAULT_RUNTIME, ActionRuntime, LazyExecutor

AGENT_RUNTIME = "service.cluster_jobs:kube_outbox_runtime"
"""The runtime of an agent's action jobs: Kubernetes as its ServiceAccount, Slack through the outbox."""


class OutboxNotifier:
    """A :class:`service.runtime.Notifier` that only appends to the outbox (no Slack token needed)."""

    def __init__(self, services: Context) -> None:
        self.services = services

    def post_message(self, channel: str, text: str, blocks: Any = None, thread_ts: str | None = None) -> str:
        return self.services.outbox.post_placeholder(channel, text, blocks, thread_ts)

    def update_message(self, channel: str, ts: str, text: str, blocks: Any = None) -> None:
        self.services.outbox.update(channel, ts, text, blocks)

    def post_ephemeral(self, channel: str, user: str, text: str, blocks: Any = None) -> None:
        self.services.outbox.ephemeral(channel, user, text, blocks)


def kube_outbox_runtime(settings: Any) -> ActionRuntime:
    """Kubernetes (as this process's identity, or impersonating) and the outbox."""
    from kube.impersonation import action_executor

    return ActionRuntime(executor=LazyExecutor(lambda: action_executor(settings)),
                         notifier=OutboxNotifier(Context.from_settings(settings)))


def job_context(ctx: Context, cluster: str | None) -> Context:
    """``ctx`` for a job of ``cluster``: that cluster's settings; without a Slack token, the outbox notifier."""
    settings = load_registry(ctx.settings).settings_for(ctx.settings, cluster) if cluster else ctx.settings
    runtime_path = ctx.runtime_path
    if settings.slack_bot_token is None and runtime_path == DEFAULT_RUNTIME:
        runtime_path = AGENT_RUNTIME
    if settings is ctx.settings and runtime_path == ctx.runtime_path:
        return ctx
    return replace(ctx, settings=settings, runtime_path=runtime_path, action_runtime=None)


def cluster_settings_context(ctx: Context, cluster: str) -> Context:
    """``ctx`` with ``cluster``'s settings (its allowlists), for authorizing a person on that cluster."""
    settings = load_registry(ctx.settings).settings_for(ctx.settings, cluster)
    return ctx if settings is ctx.settings else replace(ctx, settings=settings)


# --- agents: is the one of a cluster alive? ------------------------------------------------------------


class AgentDown(IncidentBotError):
    """A cluster's agent has not been seen within the heartbeat window: its jobs would wait for nobody."""


def agent_seen(ctx: Context, cluster: str) -> Heartbeat | None:
    """The agent's last heartbeat if it is within the window (``None``: not seen)."""
    beat = FleetStore(ctx.redis, ctx.keys).heartbeat(cluster)
    if beat is None or beat.age() > ctx.settings.agent_heartbeat_seconds:
        return None
    return beat


def down_text(ctx: Context, cluster: str) -> str:
    return ctx.templates.render("agent_down.slack.j2", cluster=cluster, window=ctx.settings.agent_heartbeat_seconds)


class CentralUnreachable(IncidentBotError):
    """A central cluster's apiserver did not answer the central workers' last probe: its jobs would time out."""


def unreachable_text(ctx: Context, cluster: Cluster) -> str | None:
    """Why a request for ``cluster`` is answered at once instead of queued (``None``: queue it)."""
    if cluster.is_agent:
        return down_text(ctx, cluster.name) if agent_seen(ctx, cluster.name) is None else None
    from service import reach

    probe = reach.last_probe(ctx, cluster.name)
    return reach.unreachable_text(ctx, cluster.name, probe) if probe is not None and not probe.reachable else None


def require_reachable(ctx: Context, cluster: Cluster) -> None:
    """Raise :class:`AgentDown` for an agent cluster whose agent was not seen within the window, and
    :class:`CentralUnreachable` for a central cluster whose last probe failed."""
    text = unreachable_text(ctx, cluster)
    if text is None:
        return
    from observability import metrics

    if cluster.is_agent:
        metrics.record_agent_down(cluster.name)
        raise AgentDown(text)
    metrics.record_cluster_unreachable(cluster.name)
    raise CentralUnreachable(text)
