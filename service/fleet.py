"""Many clusters (service layer): which cluster a request is for, channel bindings, agents, the fleet view.

Every request that touches a cluster asks :func:`cluster_for` first. The answer, in order:

1. the incident's cluster, when the command runs in an incident channel (chosen at open);
2. the channel's binding (``/k8s bind cluster <name>``);
3. the cluster the command names (``--cluster``), else the registry's default.

A name that disagrees with 1 or 2 is refused with the reason (:class:`~incident.clusters.ClusterRefused`),
and so is a button whose value names another cluster than its incident's. An unknown name is
refused too. Nothing changes on a refusal.

An *agent* cluster's jobs wait in that cluster's queues until its agent takes them. Before queueing one,
:func:`require_reachable` looks at the agent's heartbeat: an agent not seen within
``AGENT_HEARTBEAT_SECONDS`` gets an immediate answer ("no agent of cluster X seen for N s — check its
deployment") instead of a job that waits forever. The heartbeat is written by the agent itself
(:func:`agent_beat`, from ``workers.agent``). A *central* cluster whose apiserver did not answer the
central workers' last probe (:mod:`service.reach`) is answered at once too, with the probe's reason.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from incident.clusters import ALL, Cluster, ClusterRefused, ClusterRegistry, load_registry
from incident.kube_syntax import cut
from incident.model import Incident
from persistence.action_queue import ActionQueue
from persistence.action_store import ActionStore
from persistence.fleet import FleetStore
from service import reach
from service.cluster_jobs import AgentDown, agent_seen, down_text, require_reachable, unreachable_text
from service.context import Context
from service.lifecycle import Reply

__all__ = ["AgentDown", "agent_seen", "down_text", "require_reachable"]  # the agent checks live in service.cluster_jobs


def registry(ctx: Context) -> ClusterRegistry:
    return load_registry(ctx.settings)


def fleet_store(ctx: Context) -> FleetStore:
    return FleetStore(ctx.redis, ctx.keys)


def incident_cluster(ctx: Context, incident: Incident) -> str:
    """The incident's cluster (incidents opened before the registry belong to the default)."""
    return incident.cluster or registry(ctx).default


def cluster_for(ctx: Context, channel_id: str, incident: Incident | None, named: str | None = None) -> Cluster:
    """The cluster a request in ``channel_id`` acts on; refuses a name that disagrees with the channel."""
    clusters = registry(ctx)
    if named is not None and named != ALL:
        clusters.get(named)  # unknown names first: the clearest reason
    if incident is not None:
        own = incident_cluster(ctx, incident)
        if named is not None and named != own:
            raise ClusterRefused(ctx.refusal("incident_on_other_cluster", own=own, named=cut(named, 40)),
                                 hint=ctx.refusal("incident_on_other_cluster_hint", named=cut(named, 40)))
        return clusters.get(own)
    bound = fleet_store(ctx).bound(channel_id)
    if bound is not None:
        if named is not None and named != bound:
            raise ClusterRefused(ctx.refusal("channel_bound_elsewhere", bound=bound, named=cut(named, 40)),
                                 hint=ctx.refusal("channel_bound_elsewhere_hint"))
        return clusters.get(bound)
    return clusters.get(named or clusters.default)


def check_button(ctx: Context, incident: Incident, value_cluster: str | None) -> None:
    """A button naming a cluster (``<incident>@<cluster>``) must name its incident's; refuses a forged one."""
    if value_cluster is None:
        return  # a header posted before clusters were shown on buttons
    own = incident_cluster(ctx, incident)
    if value_cluster != own:
        raise ClusterRefused(ctx.refusal("button_of_other_cluster", named=cut(value_cluster, 40),
                                     incident_id=incident.id, own=own),
                             hint=ctx.refusal("button_of_other_cluster_hint"))


def check_action_channel(ctx: Context, channel_id: str, action_id: str, cluster: str) -> None:
    """A Confirm clicked in ``channel_id`` must be for that channel's cluster (its incident's, or its binding)."""
    incident = ctx.store.find_by_channel(channel_id)
    own = incident_cluster(ctx, incident) if incident is not None else fleet_store(ctx).bound(channel_id)
    if own is not None and own != cluster:
        raise ClusterRefused(ctx.refusal("action_of_other_cluster", action_id=cut(action_id, 20), cluster=cluster,
                                     own=own), hint=ctx.refusal("action_of_other_cluster_hint"))


def split_button_value(value: str) -> tuple[str, str | None]:
    """``"<id>@<cluster>"`` → ``(id, cluster)``; a value without ``@`` (older messages) → ``(value, None)``."""
    ident, sep, cluster = value.partition("@")
    return ident, (cluster if sep else None)


def button_value(incident: Incident) -> str:
    """What the incident's buttons carry: its id and its cluster."""
    return f"{incident.id}@{incident.cluster}" if incident.cluster else incident.id


# --- binding ---------------------------------------------------------------------------------------------


def bind(ctx: Context, channel_id: str, incident: Incident | None, name: str, user_id: str) -> Reply:
    cluster = registry(ctx).get(name)
    if incident is not None and incident_cluster(ctx, incident) != cluster.name:
        raise ClusterRefused(ctx.refusal("incident_channel_not_bindable", incident_id=incident.id,
                                     own=incident_cluster(ctx, incident), cluster=cluster.name))
    before = fleet_store(ctx).bind(channel_id, cluster.name)
    return Reply(ctx.templates.render("cluster_bound.slack.j2", what="bound", cluster=cluster.name, before=before,
                                      user_id=user_id))


def unbind(ctx: Context, channel_id: str, user_id: str) -> Reply:
    before = fleet_store(ctx).unbind(channel_id)
    return Reply(ctx.templates.render("cluster_bound.slack.j2", what="unbound", cluster=before,
                                      default=registry(ctx).default, user_id=user_id))


# --- agents --------------------------------------------------------------------------------------------


def agent_beat(ctx: Context, cluster: str, host: str, pid: int, pipeline: Any = None) -> None:
    fleet_store(ctx).beat(cluster, host, pid, ctx.settings.agent_heartbeat_seconds, pipeline)


def agent_ages(ctx: Context) -> dict[str, float | None]:
    """Each agent cluster → seconds since its agent was seen (``None``: not within the window); for ``/readyz`` and metrics."""
    ages: dict[str, float | None] = {}
    for cluster in registry(ctx).clusters:
        if cluster.is_agent:
            beat = agent_seen(ctx, cluster.name)
            ages[cluster.name] = beat.age() if beat is not None else None
    return ages


# --- the fleet view ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRow:
    """One line of ``/k8s clusters``."""

    name: str
    mode: str
    reachable: bool
    seen_s: float | None
    """An agent cluster: seconds since its agent's heartbeat; a central one: since the central workers' last probe."""
    problem: str | None
    """A central cluster whose last probe failed: why."""
    verdict: dict[str, Any] | None
    running: str | None
    waiting: int
    bound_here: bool


def cluster_rows(ctx: Context, channel_id: str | None = None) -> list[ClusterRow]:
    store = fleet_store(ctx)
    actions = ActionStore(ctx.redis, ctx.keys, ctx.clock)
    bound = store.bound(channel_id) if channel_id else None
    rows = []
    for cluster in registry(ctx).clusters:
        problem = None
        if cluster.is_agent:
            beat = store.heartbeat(cluster.name)
            seen = beat.age() if beat else None
            reachable = seen is not None and seen <= ctx.settings.agent_heartbeat_seconds
        else:
            probe = store.reach(cluster.name)
            seen, problem = (probe.age(), probe.problem) if probe is not None else (None, None)
            reachable = problem is None
        queue = ActionQueue(ctx.redis, cluster.name, ctx.keys, ctx.clock)
        ids = queue.ids()
        head = actions.find(ids[0]) if ids else None
        running = head.description if head is not None and head.status.value == "running" else None
        rows.append(ClusterRow(cluster.name, cluster.mode, reachable, seen, problem, store.verdict(cluster.name), running,
                               len(ids) - (1 if running else 0), cluster.name == bound))
    return rows


def clusters_listing(ctx: Context, channel_id: str) -> Reply:
    return Reply(ctx.templates.render("cluster_list.slack.j2", rows=cluster_rows(ctx, channel_id),
                                      default=registry(ctx).default, window=ctx.settings.agent_heartbeat_seconds,
                                      probed=bool(reach.probed_clusters(ctx.settings)),
                                      every=ctx.settings.cluster_probe_seconds))


def record_verdict(ctx: Context, cluster: str, summary: dict[str, Any]) -> None:
    fleet_store(ctx).record_verdict(cluster, {**summary, "at": time.time()})


def new_fleet_run(ctx: Context, channel: str, user_id: str, clusters: list[str], incident_id: str | None) -> str:
    """A new fleet run (the same one again when an acknowledged request is replayed after a crash)."""
    from service import inbox

    effect = inbox.effect_id("fleet-run")
    run_id = effect.replace(":", "-") if effect else uuid.uuid4().hex[:12]
    fleet_store(ctx).start_run(run_id, {"channel": channel, "user_id": user_id, "clusters": clusters,
                                        "incident_id": incident_id, "started": time.time()})
    return run_id


def add_fleet_row(ctx: Context, run_id: str, cluster: str, row: dict[str, Any]) -> bool:
    """Add a cluster's row to a fleet run; the caller that completes it posts the matrix (outbox). True if it did."""
    done = fleet_store(ctx).add_row(run_id, cluster, row)
    if done is None:
        return False
    meta, rows = done["meta"], done["rows"]
    ordered = [(name, rows.get(name) or {}) for name in meta.get("clusters") or []]
    failing = [name for name, row in ordered if row.get("scope") not in (None, "healthy")]
    text = ctx.templates.render("fleet_matrix.slack.j2", rows=ordered, failing=failing, user_id=meta.get("user_id"),
                                elapsed=time.time() - float(meta.get("started") or time.time()))
    from chat.blocks import text_section

    if not fleet_store(ctx).mark_posted(run_id):
        return False
    ctx.outbox.post(str(meta["channel"]), text, text_section(text), incident_id=meta.get("incident_id"))
    return True


def request_fleet_assessment(ctx: Context, channel_id: str, incident: Incident | None, user_id: str) -> Reply:
    """``/k8s assess --cluster all``: one assessment per cluster, one verdict matrix posted when the last answers.

    A cluster whose agent is not seen, or a central one whose last probe failed, gets its row at once (the
    reason), so the matrix never waits for it.
    """
    from service import inbox, jobs

    if incident is not None or fleet_store(ctx).bound(channel_id) is not None:
        raise ClusterRefused(ctx.refusal("fleet_in_bound_channel"))
    clusters = registry(ctx).clusters
    run_id = new_fleet_run(ctx, channel_id, user_id, [c.name for c in clusters], None)
    reasons = {c.name: unreachable_text(ctx, c) for c in clusters}
    down = [c for c in clusters if reasons[c.name] is not None]
    for cluster in clusters:
        if cluster in down:
            continue
        job_id, queued = inbox.job_once(ctx.redis)  # a replay after a crash queues only what its first run did not
        if queued:
            continue
        jobs.enqueue(ctx.settings, jobs.ASSESSMENT, None, channel_id, redis=ctx.redis, on_cluster=cluster.name,
                     timeout=int(ctx.settings.assessment_budget_seconds) + 60, meta={"requested_by": user_id},
                     job_id=job_id, cluster=cluster.name, fleet_run=run_id)
    for cluster in down:
        add_fleet_row(ctx, run_id, cluster.name, {"down": reasons[cluster.name]})
    return Reply(ctx.templates.render("fleet_requested.slack.j2", count=len(clusters),
                                      down=[c.name for c in down if c.is_agent],
                                      unreachable=[c.name for c in down if not c.is_agent]))
