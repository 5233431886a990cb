"""The context of a cluster-bound job, and the action runtime of a process without a Slack token (an agent).

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
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from incident.clusters import load_registry
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
