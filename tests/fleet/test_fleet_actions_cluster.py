"""Risky actions across a fleet of real control planes, each run by its cluster's agent as that agent's ServiceAccount.

A drain in ``a`` (held up by a PodDisruptionBudget) and a cordon in ``b`` overlap; a second action in ``a``
waits for the drain (from the audit timestamps). Per-cluster allowlists decide who may act where. An agent
SIGKILLed with a confirmation pending: Confirm is refused with the reason, the confirmation expires as
usual, and after the restart nothing runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from chat.action_blocks import ACTION_CONFIRM
from incident.actions import ActionStatus
from sandbox.slack import SlackEmulator
from sandbox.scenarios import BlockingPdb
from service import fleet
from service.actions import action_store
from tests.bot.helpers import ephemeral_texts, wait_until
from tests.fleet.helpers import opened
from tests.fixtures.slack import RunningBot
from tests.fixtures.workers import WorkerProcesses
from tests.fleet.conftest import HEARTBEAT_SECONDS, Agents, FleetCluster

pytestmark = pytest.mark.cluster
FINAL = {ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.OUTCOME_UNKNOWN, ActionStatus.REJECTED,
         ActionStatus.EXPIRED, ActionStatus.CANCELLED}


def _answer(slack: SlackEmulator, user: str, channel: str, text: str) -> str:
    before = len(ephemeral_texts(slack))
    slack.slash_command(user, channel, text)
    wait_until(lambda: len(ephemeral_texts(slack)) > before, timeout=15)
    return ephemeral_texts(slack)[-1]


def _confirm(slack: SlackEmulator, user: str, channel: str, ts: str, action_id: str) -> str:
    """Click Confirm and wait for its answer (so a later command never takes that answer for its own)."""
    before = len(ephemeral_texts(slack))
    slack.click_button(user, channel, ts, ACTION_CONFIRM, action_id)
    wait_until(lambda: len(ephemeral_texts(slack)) > before, timeout=15)
    return ephemeral_texts(slack)[-1]


def _confirmation(slack: SlackEmulator, channel: str, action_id: str, timeout: float = 60) -> dict[str, Any]:
    """The confirmation message of ``action_id`` once the bot's drainer posted what the agent queued."""
    def find() -> dict[str, Any] | None:
        for message in slack.messages(channel, include_replies=False):
            for block in message.get("blocks") or []:
                for element in block.get("elements") or []:
                    if element.get("action_id") == ACTION_CONFIRM and element.get("value") == action_id:
                        return message
        return None

    wait_until(find, timeout=timeout)
    found = find()
    assert found is not None
    return found


def _node_with_pod(api: k8s.ApiClient, pod: str) -> str:
    return str(k8s.CoreV1Api(api).read_namespaced_pod(pod, "default").spec.node_name)


def _schedulable(api: k8s.ApiClient, exclude: set[str]) -> str:
    nodes = k8s.CoreV1Api(api).list_node(label_selector="type=kwok").items
    return next(n.metadata.name for n in nodes if n.metadata.name not in exclude and not n.spec.unschedulable)


def _uncordon_all(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    for node in core.list_node().items:
        if node.spec.unschedulable:
            core.patch_node(node.metadata.name, {"spec": {"unschedulable": False}})


def test_overlap_across_clusters_never_within_one(slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses,
                                                  agents: Agents, fleet_planes: dict[str, FleetCluster]) -> None:
    agents.start("a")
    agents.start("b")
    workers.start()
    wait_until(lambda: all(fleet.agent_seen(bot_server.services, n) for n in ("a", "b")), timeout=60)
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster a sev1 Nodes flapping in a")
    in_a = opened(slack, bot_server)
    slack.slash_command("U_CAROL", "C_GENERAL", "incident open --cluster b sev2 Disk pressure in b")
    wait_until(lambda: len(list(bot_server.services.store.iter_all())) == 2)
    in_b = opened(slack, bot_server)
    assert (in_a.cluster, in_b.cluster) == ("a", "b")
    store = action_store(bot_server.services)

    with fleet_planes["a"].admin() as api_a, fleet_planes["b"].admin() as api_b:
        pdb = BlockingPdb().apply(api_a)
        try:
            drained = _node_with_pod(api_a, pdb.details["pods"][0])
            spare_a = _schedulable(api_a, {drained})
            node_b = _schedulable(api_b, set())

            # Per-cluster allowlists: b lets only U_CAROL act; a uses the global list (U_ALICE, U_BOB).
            assert "may not request risky actions" in _answer(slack, "U_ALICE", in_b.channel_id, f"cordon node {node_b}")
            assert "may not request risky actions" in _answer(slack, "U_CAROL", in_a.channel_id, f"cordon node {spare_a}")
            assert store.find("A1") is None  # refused before anything was stored

            _answer(slack, "U_ALICE", in_a.channel_id, f"drain node {drained} --timeout 25")
            drain = _confirmation(slack, in_a.channel_id, "A1")
            _confirm(slack, "U_ALICE", in_a.channel_id, drain["ts"], "A1")
            wait_until(lambda: store.get("A1").status == ActionStatus.RUNNING, timeout=60)

            _answer(slack, "U_ALICE", in_a.channel_id, f"cordon node {spare_a}")
            second_a = _confirmation(slack, in_a.channel_id, "A2")
            _confirm(slack, "U_BOB", in_a.channel_id, second_a["ts"], "A2")
            _answer(slack, "U_CAROL", in_b.channel_id, f"cordon node {node_b}")
            cordon_b = _confirmation(slack, in_b.channel_id, "A3")
            _confirm(slack, "U_CAROL", in_b.channel_id, cordon_b["ts"], "A3")

            listing = _answer(slack, "U_ALICE", "C_GENERAL", "queue")
            assert "Risky actions on cluster a" in listing and ":gear: *running* — drain node" in listing
            assert "cluster *hub*" in listing and ("cluster b" in listing or "cluster *b*" in listing)  # every cluster
            wait_until(lambda: all(store.get(i).status in FINAL for i in ("A1", "A2", "A3")), timeout=120)
        finally:
            pdb.undo()
            _uncordon_all(api_a)
            _uncordon_all(api_b)

    drain_a, cordon_a, cordon_b_done = store.get("A1"), store.get("A2"), store.get("A3")
    assert drain_a.status == ActionStatus.FAILED, drain_a.outcome  # the PDB refused every eviction until --timeout
    assert cordon_a.status == ActionStatus.SUCCEEDED and cordon_b_done.status == ActionStatus.SUCCEEDED
    assert drain_a.started_at and drain_a.finished_at and cordon_a.started_at and cordon_b_done.started_at
    assert cordon_b_done.finished_at is not None and cordon_a.finished_at is not None
    # Across clusters: b's cordon ran while a's drain held a's lock.
    assert drain_a.started_at < cordon_b_done.finished_at and cordon_b_done.started_at < drain_a.finished_at
    # Within a: the second action started only after the drain had finished.
    assert cordon_a.started_at >= drain_a.finished_at
    # The outcomes reached the incident channels through the outbox (the agents hold no Slack token).
    wait_until(lambda: any("A3" in m["text"] and "succeeded" in m["text"].lower()
                           for m in slack.messages(in_b.channel_id)), timeout=30)


def test_an_agent_killed_with_a_confirmation_pending(slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses,
                                                     agents: Agents, fleet_planes: dict[str, FleetCluster]) -> None:
    agents.start("a")
    workers.start()
    wait_until(lambda: fleet.agent_seen(bot_server.services, "a") is not None, timeout=60)
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster a sev2 Cordon pending")
    incident = opened(slack, bot_server)
    store = action_store(bot_server.services)
    with fleet_planes["a"].admin() as api:
        node = _schedulable(api, set())
        _answer(slack, "U_ALICE", incident.channel_id, f"cordon node {node}")
        message = _confirmation(slack, incident.channel_id, "A1")
        agents.kill("a")
        wait_until(lambda: fleet.agent_seen(bot_server.services, "a") is None, timeout=HEARTBEAT_SECONDS * 3)
        assert "No agent of cluster *a* seen" in _confirm(slack, "U_BOB", incident.channel_id, message["ts"], "A1")
        assert store.get("A1").status == ActionStatus.AWAITING_CONFIRMATION
        # The central worker's scheduler expires it (confirmation_ttl_seconds=20) and edits the agent's message.
        wait_until(lambda: store.get("A1").status == ActionStatus.EXPIRED, timeout=60)
        wait_until(lambda: not any(e.get("action_id") == ACTION_CONFIRM for b in
                                   (next(m for m in slack.messages(incident.channel_id) if m["ts"] == message["ts"])
                                    .get("blocks") or []) for e in b.get("elements") or []), timeout=30)
        agents.start("a")
        wait_until(lambda: fleet.agent_seen(bot_server.services, "a") is not None, timeout=60)
        assert not k8s.CoreV1Api(api).read_node(node).spec.unschedulable, "the expired cordon never ran"
        assert store.get("A1").status == ActionStatus.EXPIRED and store.get("A1").started_at is None


def test_a_deleted_nodes_watch_and_rebalance_run_in_its_agent(slack: SlackEmulator, bot_server: RunningBot,
                                                               agents: Agents, fleet_planes: dict[str, FleetCluster]) -> None:
    """After a ``delete node`` in agent cluster ``a`` (what the drainer records), the watch for the node's return and
    the rebalance check wait in ``a``'s own queue and its agent runs them; no central worker is running."""
    from rq.registry import ScheduledJobRegistry

    from sandbox.cluster import kwok_node_manifest
    from service import node_restore
    from service.cluster_jobs import job_context

    agents.start("a", count=1)
    wait_until(lambda: fleet.agent_seen(bot_server.services, "a") is not None, timeout=60)
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster a sev2 Node gone in a")
    incident = opened(slack, bot_server)
    ctx = job_context(bot_server.services, "a")
    node = "a-node-restore-0"
    request = action_store(ctx).new(cluster="a", kind="delete-node", target=node, requested_by="U_ALICE",
                                    channel_id=incident.channel_id, incident_id=incident.id)
    node_restore.node_deleted(ctx.settings, ctx.redis, request, {"labels": {"pool": "db"}, "taints": []})
    redis = ctx.redis
    assert ScheduledJobRegistry("k8sbot-assess@a", connection=redis).get_job_ids() != []
    assert ScheduledJobRegistry("k8sbot-assess", connection=redis).get_job_ids() == []  # not the central queue

    with fleet_planes["a"].admin() as api:
        core = k8s.CoreV1Api(api)
        core.create_node(kwok_node_manifest(node, 90))
        try:
            def said(words: str) -> bool:
                return any(words in str(m.get("text")) for m in slack.messages(incident.channel_id))

            wait_until(lambda: said(f"Node `{node}` registered again"), timeout=90)  # sent by the bot's drainers
            node_restore.restored(ctx.settings.model_copy(update={"node_rebalance_window_seconds": 1}), redis, request)
            wait_until(lambda: said(f"Rebalance check of node `{node}`"), timeout=60)
        finally:
            core.delete_node(node)
