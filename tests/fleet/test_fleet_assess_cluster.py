"""Assessments across a fleet of real control planes: agents in ``a`` and ``b``, the central worker for ``hub``.

The bot (HTTP, the Slack emulator) queues; each agent runs its own cluster's checks as its ServiceAccount
and sends what it has to say through the outbox (it has no Slack token); the bot's drainers post it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from rq.job import Job
from rq.registry import StartedJobRegistry

from sandbox.proxy import FaultProxy
from sandbox.slack import SlackEmulator
from sandbox.scenarios import DnsOutage
from service import fleet
from service.assessment import META_KEY
from tests.bot.helpers import ephemeral_texts, wait_until
from tests.fleet.helpers import opened
from tests.fixtures.cluster import wait_for_settled_kube_system
from tests.fixtures.slack import RunningBot
from tests.fixtures.workers import WorkerProcesses
from tests.fleet.conftest import HEARTBEAT_SECONDS, Agents, FleetCluster

pytestmark = pytest.mark.cluster


def _seen(bot: RunningBot, *names: str) -> bool:
    return all(fleet.agent_seen(bot.services, name) is not None for name in names)


def test_the_verdict_matrix_has_one_broken_cluster(slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses,
                                                   agents: Agents, fleet_planes: dict[str, FleetCluster],
                                                   k8s_api: k8s.ApiClient) -> None:
    wait_for_settled_kube_system(k8s_api)
    agents.start("a")
    agents.start("b")
    workers.start()
    wait_until(lambda: _seen(bot_server, "a", "b"), timeout=60)
    slack.add_channel("C_FLEET", name="fleet", members=[slack.bot_user_id, "U_ALICE"])
    with fleet_planes["b"].admin() as api:
        handle = DnsOutage().apply(api)
        try:
            slack.slash_command("U_ALICE", "C_FLEET", "assess --cluster all")
            wait_until(lambda: any("Fleet assessment" in m["text"] for m in slack.messages("C_FLEET")), timeout=150)
        finally:
            handle.undo()
    (matrix,) = [m["text"] for m in slack.messages("C_FLEET") if "Fleet assessment" in m["text"]]
    lines = {line.split("*")[1]: line for line in matrix.splitlines() if line.count("*") >= 2 and " — " in line}
    assert "DNS cascade" in lines["b"] and ":rotating_light:" in lines["b"], matrix
    assert "No cluster-wide failure" in lines["a"] and "No cluster-wide failure" in lines["hub"], matrix
    assert "Only *b* is failing" in matrix
    assert any("Assessing 3 cluster(s)" in t for t in ephemeral_texts(slack))
    # Each cluster's verdict is kept for /k8s clusters; the agents talked to their own apiservers only.
    assert "DNS cascade" in (fleet.fleet_store(bot_server.services).verdict("b") or {}).get("headline", "")
    log = agents.log_text()
    assert "agent of cluster a serving k8sbot-actions@a, k8sbot-assess@a" in log
    assert "agent of cluster b serving k8sbot-actions@b, k8sbot-assess@b" in log


def test_an_incident_on_an_agent_cluster_and_the_agent_killed(slack: SlackEmulator, bot_server: RunningBot,
                                                              agents: Agents, workers: WorkerProcesses) -> None:
    agents.start("a")
    wait_until(lambda: _seen(bot_server, "a"), timeout=60)
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster a sev1 Orders failing")
    incident = opened(slack, bot_server)
    assert incident.cluster == "a"

    # The agent's verdict arrives through the outbox: it replaces the request message, the details in its thread.
    slack.slash_command("U_ALICE", incident.channel_id, "assess")
    wait_until(lambda: any(m["text"].startswith("Assessment of a:") for m in slack.messages(incident.channel_id)),
               timeout=120)
    assert not any("queued…" in m["text"] for m in slack.messages(incident.channel_id, include_replies=False)), \
        "the verdict replaced the request message"
    timeline = bot_server.services.store.timeline(incident.id)
    wait_until(lambda: timeline.entries({"assessment"}), timeout=10)
    (entry,) = timeline.entries({"assessment"})
    assert entry.data["snapshot"]["cluster"] == "a"

    # SIGKILL the agent: once its heartbeat window passes, the bot answers at once and queues nothing.
    agents.kill("a")
    wait_until(lambda: not _seen(bot_server, "a"), timeout=HEARTBEAT_SECONDS * 3)
    before = len(ephemeral_texts(slack))
    slack.slash_command("U_ALICE", incident.channel_id, "assess")
    wait_until(lambda: len(ephemeral_texts(slack)) > before)
    assert f"No agent of cluster *a* seen for {HEARTBEAT_SECONDS} s — check its deployment" in ephemeral_texts(slack)[-1]
    assert bot_server.services.redis.llen("rq:queue:k8sbot-assess@a") == 0

    # Restarted, it serves again; the earlier assessment is not run a second time.
    agents.start("a")
    wait_until(lambda: _seen(bot_server, "a"), timeout=60)
    slack.slash_command("U_ALICE", incident.channel_id, "assess")
    wait_until(lambda: len(timeline.entries({"assessment"})) == 2, timeout=120)

    def verdicts() -> list[dict[str, object]]:
        return [m for m in slack.messages(incident.channel_id, include_replies=False)
                if str(m["text"]).startswith("Assessment of a:")]

    wait_until(lambda: len(verdicts()) == 2, timeout=30)  # the drainer sends what the agent queued
    assert len(timeline.entries({"assessment"})) == 2

    # The recovery checklist: the agent validates its cluster, the central worker (the Slack token) resolves.
    workers.start()
    slack.slash_command("U_ALICE", incident.channel_id, "resolve")
    wait_until(lambda: timeline.entries({"resolve_check"}), timeout=120)
    (check,) = timeline.entries({"resolve_check"})
    validation = [e for e in timeline.entries({"assessment"}) if e.data.get("purpose") == "resolve-validation"]
    assert validation and validation[0].data["snapshot"]["cluster"] == "a"
    # Whether the checklist passes depends on the machine (its latency item fails on two overloaded cores);
    # either way the central worker concludes: it resolves, or says what is still wrong.
    if check.data["passed"]:
        wait_until(lambda: bot_server.services.store.get(incident.id).status.value == "resolved", timeout=60)
        wait_until(lambda: any("Recovery checklist" in m["text"] for m in slack.messages(incident.channel_id)), timeout=30)
    else:
        wait_until(lambda: any("Not resolving yet" in m["text"] for m in slack.messages(incident.channel_id)), timeout=30)
        assert bot_server.services.store.get(incident.id).status.value != "resolved"


def _through(cluster: FleetCluster, proxy: FaultProxy, directory: Path) -> Path:
    """The agent's kubeconfig (its ServiceAccount token), with the fault proxy in front of its apiserver."""
    document = yaml.safe_load(cluster.agent_kubeconfig.read_text())
    document["clusters"][0]["cluster"]["server"] = proxy.url
    path = directory / "agent-through-proxy"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def _progress(bot: RunningBot) -> dict[str, object] | None:
    """The saved progress of the assessment running on ``a``'s queue (``None``: none running)."""
    redis = bot.services.redis
    for job_id in StartedJobRegistry("k8sbot-assess@a", connection=redis).get_job_ids(cleanup=False):
        state = Job.fetch(job_id, connection=redis).meta.get(META_KEY)
        if isinstance(state, dict):
            return state
    return None


def test_an_agent_killed_mid_assessment_is_finalized_centrally(slack: SlackEmulator, bot_server: RunningBot,
                                                               workers: WorkerProcesses, agents: Agents,
                                                               fleet_planes: dict[str, FleetCluster],
                                                               tmp_path: Path) -> None:
    """The agent dies with the checks half done: the central worker's maintenance notices once the agent's
    heartbeat lapses, posts the partial verdict naming the missing checks, and queues no retry."""
    plane = fleet_planes["a"].plane
    assert plane.ports is not None
    workers.start()
    with FaultProxy("127.0.0.1", plane.ports.apiserver) as proxy:
        slow = replace(fleet_planes["a"], agent_kubeconfig=_through(fleet_planes["a"], proxy, tmp_path))
        (tmp_path / "slow").mkdir()
        pool = Agents(agents.redis_url, {"a": slow}, tmp_path / "slow")
        try:
            pool.start("a", count=1)
            wait_until(lambda: _seen(bot_server, "a"), timeout=60)
            slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster a sev2 Agent dies mid-way")
            incident = opened(slack, bot_server)
            proxy.set_latency(1.0)  # every request to a's apiserver takes a second more: the checks take a while
            slack.slash_command("U_ALICE", incident.channel_id, "assess")
            wait_until(lambda: (state := _progress(bot_server)) is not None and state.get("results"), timeout=120)
            pool.kill("a")
            state = _progress(bot_server)
            assert state is not None and not state.get("finished"), "the agent was killed mid-assessment"
        finally:
            pool.stop_all()
    wait_until(lambda: not _seen(bot_server, "a"), timeout=HEARTBEAT_SECONDS * 3)

    def interrupted() -> list[dict[str, object]]:
        return [m for m in slack.messages(incident.channel_id, include_replies=False)
                if "An earlier attempt was interrupted (the agent of cluster a was not seen" in json.dumps(m["blocks"])]

    wait_until(lambda: interrupted(), timeout=150)  # the next maintenance of the central worker (about a minute)
    (message,) = interrupted()
    assert str(message["text"]).startswith("Assessment of a:"), message["text"]
    assert "queued…" not in json.dumps(message["blocks"]), "the verdict replaced the progress message"
    timeline = bot_server.services.store.timeline(incident.id)
    wait_until(lambda: timeline.entries({"assessment"}), timeout=10)
    (entry,) = timeline.entries({"assessment"})
    assert entry.data["snapshot"]["interrupted"]["missing"], entry.data
    redis = bot_server.services.redis
    assert redis.llen("rq:queue:k8sbot-assess@a") == 0, "no retry waits for the dead agent"
    assert StartedJobRegistry("k8sbot-assess@a", connection=redis).get_job_ids(cleanup=False) == []
