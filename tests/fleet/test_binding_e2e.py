"""Many clusters through the real bot and the Slack emulator: incidents per cluster, bound channels, refusals.

Every refusal is checked twice: the reason in the ephemeral answer, and that nothing changed (no incident,
no queued job, the binding as it was).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from rq import Queue

from chat.blocks import ACTION_ASSESS
from incident.settings import Settings
from sandbox.slack import SlackEmulator, payloads
from service import fleet
from tests.bot.helpers import ephemeral_texts, wait_until
from tests.fleet.helpers import opened
from tests.fixtures.slack import BOT_TOKEN, RESPONDER_GROUP, SIGNING_SECRET, STAKEHOLDER_CHANNEL, RunningBot


@pytest.fixture()
def clusters_file(tmp_path: Path, fake_kubeconfig: Path) -> Path:
    path = tmp_path / "clusters.yaml"
    path.write_text(f"""
default: prod-a
clusters:
  - name: prod-a
    kubeconfig: {fake_kubeconfig}
  - name: prod-b
    kubeconfig: {fake_kubeconfig}
    action_allowed_users: [U_CAROL]
  - name: edge
    mode: agent
""")
    return path


@pytest.fixture()
def bot_settings(slack: SlackEmulator, redis_url: str, fake_kubeconfig: Path, clusters_file: Path) -> Settings:
    return Settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.api_url,
        stakeholder_channel=STAKEHOLDER_CHANNEL, responder_usergroup=RESPONDER_GROUP, redis_url=redis_url,
        kubeconfig=fake_kubeconfig, action_allowed_users=["U_ALICE", "U_BOB"], clusters_file=clusters_file,
        agent_heartbeat_seconds=30)


def queued(bot: RunningBot) -> dict[str, int]:
    """Jobs waiting in every queue of this installation that has any."""
    redis = bot.services.redis
    names = sorted(n.decode().removeprefix("rq:queue:") for n in redis.scan_iter("rq:queue:*"))
    counts = {name: Queue(name, connection=redis).count for name in names}
    return {name: count for name, count in counts.items() if count}


def answer_after(slack: SlackEmulator, before: int) -> str:
    wait_until(lambda: len(ephemeral_texts(slack)) > before)
    return ephemeral_texts(slack)[-1]


def command(slack: SlackEmulator, user: str, channel: str, text: str) -> str:
    before = len(ephemeral_texts(slack))
    slack.slash_command(user, channel, text)
    return answer_after(slack, before)


def forge_click(slack: SlackEmulator, user: str, channel: str, ts: str, action_id: str, value: str) -> None:
    """A correctly signed click whose value was changed on the way (Slack would never send it; a forger might)."""
    ws = slack.workspace
    message = ws.message(channel, ts).to_api()
    action = {"action_id": action_id, "block_id": f"incident_header:{value.split('@')[0]}", "type": "button",
              "value": value, "action_ts": f"{time.time():.6f}"}
    response_url = ws.issue_response_url("actions", channel=channel, user=user, message_ts=ts,
                                         original_is_ephemeral=False)
    payload = payloads.block_actions(ws, slack.verification_token, ws.require_user(user), ws.require_channel(channel),
                                     message, is_ephemeral=False, action=action, response_url=response_url,
                                     trigger_id=ws.issue_trigger(user))
    slack.transport.interaction("block_actions", payload)


def test_an_incident_belongs_to_its_cluster(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster prod-b sev1 Checkout down")
    incident = opened(slack, bot_server)
    assert incident.cluster == "prod-b"
    channel = slack.channels[incident.channel_id]
    assert channel.topic.endswith("· cluster prod-b")
    header = slack.messages(incident.channel_id)[0]
    values = {e["value"] for b in header["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert values == {f"{incident.id}@prod-b"}
    assert "cluster *prod-b*" in json.dumps(header["blocks"])
    assert "Cluster: *prod-b*" in slack.messages(STAKEHOLDER_CHANNEL)[0]["text"]
    assert "cluster *prod-b*" in command(slack, "U_ALICE", incident.channel_id, "incident status")

    # In the incident's channel the incident's cluster is the only one.
    refused = command(slack, "U_ALICE", incident.channel_id, "assess --cluster prod-a")
    assert "This incident is on cluster `prod-b`; it cannot act on `prod-a`" in refused
    assert queued(bot_server) == {}

    # Its header's Assess queues on prod-b's own queue.
    slack.click_button("U_BOB", incident.channel_id, header["ts"], ACTION_ASSESS)
    wait_until(lambda: queued(bot_server).get("k8sbot-assess@prod-b") == 1)
    assert queued(bot_server) == {"k8sbot-assess@prod-b": 1}

    # A forged button naming prod-a is refused with the reason; nothing more is queued.
    before = len(ephemeral_texts(slack))
    forge_click(slack, "U_BOB", incident.channel_id, header["ts"], ACTION_ASSESS, f"{incident.id}@prod-a")
    assert "names cluster `prod-a`, but incident" in answer_after(slack, before)
    assert queued(bot_server) == {"k8sbot-assess@prod-b": 1}

    # Without a cluster, open uses the default.
    slack.slash_command("U_BOB", "C_GENERAL", "incident open DNS flapping")
    wait_until(lambda: len(list(bot_server.services.store.iter_all())) == 2)
    second = opened(slack, bot_server)
    assert second.cluster == "prod-a"


def test_a_bound_channel_acts_on_its_cluster_only(slack: SlackEmulator, bot_server: RunningBot) -> None:
    assert "now bound to cluster *prod-a*" in command(slack, "U_ALICE", "C_GENERAL", "bind cluster prod-a")
    store = bot_server.services.store

    refused = command(slack, "U_ALICE", "C_GENERAL", "incident open --cluster prod-b sev2 Other cluster")
    assert "This channel is bound to cluster `prod-a`; it cannot act on `prod-b`" in refused
    refused = command(slack, "U_ALICE", "C_GENERAL", "assess --cluster prod-b")
    assert "bound to cluster `prod-a`" in refused
    refused = command(slack, "U_ALICE", "C_GENERAL", "assess --cluster all")
    assert "acts on one cluster only" in refused
    assert list(store.iter_all()) == [] and queued(bot_server) == {}

    # Bad names never get past the parser or the registry, and the binding stays.
    assert "is not a cluster name" in command(slack, "U_ALICE", "C_GENERAL", "bind cluster <@U_BOB>")
    assert "is not a cluster name" in command(slack, "U_ALICE", "C_GENERAL", "bind cluster $(reboot)")
    unknown = command(slack, "U_ALICE", "C_GENERAL", "bind cluster prod-z")
    assert "There is no cluster `prod-z`" in unknown and "`prod-a`, `prod-b`, `edge`" in unknown
    assert "is not a cluster name" in command(slack, "U_ALICE", "C_GENERAL", "assess --cluster <!channel>")
    assert fleet.FleetStore(bot_server.services.redis, bot_server.services.keys).bound("C_GENERAL") == "prod-a"

    # An incident opened from the bound channel belongs to its cluster; a plain assess there queues on it.
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 Payments slow")
    assert opened(slack, bot_server).cluster == "prod-a"
    slack.slash_command("U_ALICE", "C_GENERAL", "assess")
    wait_until(lambda: queued(bot_server).get("k8sbot-assess@prod-a") == 1)

    assert "no longer bound to cluster *prod-a*" in command(slack, "U_ALICE", "C_GENERAL", "unbind cluster")
    slack.slash_command("U_ALICE", "C_GENERAL", "assess --cluster prod-b")
    wait_until(lambda: queued(bot_server).get("k8sbot-assess@prod-b") == 1)


def test_an_agent_cluster_without_its_agent_is_answered_at_once(slack: SlackEmulator,
                                                               bot_server: RunningBot) -> None:
    answer = command(slack, "U_ALICE", "C_GENERAL", "assess --cluster edge")
    assert "No agent of cluster *edge* seen for 30 s — check its deployment" in answer
    assert queued(bot_server) == {}
    with urllib.request.urlopen(f"{bot_server.url}/readyz?exclude=kubernetes") as response:
        ready = json.loads(response.read())
    assert ready["status"] == "ready" and ready["agents"] == {"edge": "down: not seen for 30 s"}
    with urllib.request.urlopen(f"{bot_server.url}/metrics") as response:
        text = response.read().decode()
    assert 'k8s_incident_bot_agent_seen_age_seconds{cluster="edge"} +Inf' in text
    assert 'k8s_incident_bot_agent_down_answers_total{cluster="edge"}' in text

    # Its agent heartbeats: the same request is queued on the agent's queue.
    fleet.agent_beat(bot_server.services, "edge", "edge-agent-0", 4242)
    slack.slash_command("U_ALICE", "C_GENERAL", "assess --cluster edge")
    wait_until(lambda: queued(bot_server).get("k8sbot-assess@edge") == 1)
    listing = command(slack, "U_ALICE", "C_GENERAL", "clusters")
    assert "*edge* · agent · agent seen" in listing and "*prod-a* · central" in listing
    assert "*prod-b* · central" in listing and "not assessed yet" in listing


def test_fleet_assessment_answers_for_a_missing_agent(slack: SlackEmulator, bot_server: RunningBot) -> None:
    answer = command(slack, "U_ALICE", "C_GENERAL", "assess --cluster all")
    assert "Assessing 3 cluster(s)" in answer and "No agent seen for: edge" in answer
    assert queued(bot_server) == {"k8sbot-assess@prod-a": 1, "k8sbot-assess@prod-b": 1}


def test_the_matrix_is_posted_when_every_row_is_in(slack: SlackEmulator, bot_server: RunningBot) -> None:
    """Rows of clusters whose agent is down are filled at once; the last row posts the matrix (through the outbox)."""
    services = bot_server.services
    slack.add_channel("C_FLEET", name="fleet", members=[slack.bot_user_id, "U_ALICE"])
    run_id = fleet.new_fleet_run(services, "C_FLEET", "U_ALICE", ["prod-a", "edge"], None)
    assert not fleet.add_fleet_row(services, run_id, "edge", {"down": fleet.down_text(services, "edge")})
    assert not fleet.add_fleet_row(services, run_id, "edge", {"down": "a retried job counts once"})
    assert fleet.add_fleet_row(services, run_id, "prod-a", {"scope": "cluster-wide", "headline": "Cluster-wide failure: DNS cascade"})
    assert not fleet.add_fleet_row(services, run_id, "prod-a", {"scope": "healthy", "headline": "again"})
    wait_until(lambda: any("Fleet assessment" in m["text"] for m in slack.messages("C_FLEET")))
    (matrix,) = [m["text"] for m in slack.messages("C_FLEET") if "Fleet assessment" in m["text"]]
    assert ":rotating_light: *prod-a* — Cluster-wide failure: DNS cascade" in matrix
    assert "*edge* — :electric_plug: No agent of cluster *edge* seen for 30 s" in matrix
    assert "Only *prod-a* is failing" in matrix and "again" not in matrix


def test_the_same_title_on_two_clusters_makes_two_incidents(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster prod-a sev1 Ingress 502s")
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster prod-b sev1 Ingress 502s")
    wait_until(lambda: len(list(bot_server.services.store.iter_all())) == 2)
    assert sorted(i.cluster for i in bot_server.services.store.iter_all()) == ["prod-a", "prod-b"]
    wait_until(lambda: sum("Opened incident" in t for t in ephemeral_texts(slack)) == 2)  # both answers are in
    before = len(ephemeral_texts(slack))
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster prod-b sev1 ingress 502S")
    assert "already open" in answer_after(slack, before)
    assert len(list(bot_server.services.store.iter_all())) == 2


def test_a_confirm_for_another_clusters_action_is_refused(slack: SlackEmulator, bot_server: RunningBot) -> None:
    from chat.action_blocks import ACTION_CONFIRM
    from incident.actions import ActionStatus
    from persistence.action_store import ActionStore

    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster prod-b sev2 Queue backlog")
    in_b = opened(slack, bot_server)
    store = ActionStore(bot_server.services.redis, bot_server.services.keys)
    request = store.new(cluster="prod-a", kind="cordon", target="kwok-node-0", requested_by="U_ALICE",
                        channel_id="C_GENERAL", incident_id=None)
    store.prepared(request.id, dry_run="unschedulable false → true", guard="", ttl_seconds=300)
    header = slack.messages(in_b.channel_id)[0]
    before = len(ephemeral_texts(slack))
    forge_click(slack, "U_ALICE", in_b.channel_id, header["ts"], ACTION_CONFIRM, request.id)
    assert f"Action `{request.id}` is on cluster `prod-a`, but this channel acts on `prod-b`" in answer_after(slack, before)
    assert store.get(request.id).status == ActionStatus.AWAITING_CONFIRMATION and queued(bot_server) == {}

    # prod-b lets only U_CAROL act: U_ALICE (allowed globally) is refused there, and nothing is stored.
    refused = command(slack, "U_ALICE", in_b.channel_id, "cordon node kwok-node-1")
    assert "may not request risky actions" in refused
    assert store.find("A2") is None and queued(bot_server) == {}
    # An agent cluster without its agent: answered at once, nothing stored or queued.
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open --cluster edge sev2 Edge nodes")
    wait_until(lambda: len(list(bot_server.services.store.iter_all())) == 2)
    on_edge = opened(slack, bot_server)
    assert on_edge.cluster == "edge"
    answer = command(slack, "U_ALICE", on_edge.channel_id, "cordon node kwok-node-1")
    assert "No agent of cluster *edge* seen for 30 s" in answer
    assert store.find("A2") is None and queued(bot_server) == {}
