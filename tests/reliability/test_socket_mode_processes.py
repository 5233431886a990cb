"""Two ``k8s-incident-bot socket`` processes connected at once (two replicas): every envelope handled once.

Slack spreads an app's envelopes over its open connections, each envelope to one of them; two bot
replicas in Socket Mode therefore share the work without a load balancer. Nothing may be done twice
(an incident opened twice, a message recorded twice) or dropped, and both replicas must take part.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from incident.settings import Settings
from persistence.store import IncidentStore
from sandbox.ports import free_port
from sandbox.slack import SlackEmulator
from tests.bot.helpers import ephemeral_texts, wait_until
from tests.fixtures.workers import settings_environment
from persistence.connection import get_keys

INCIDENTS = 6
COMMANDS = 12


@pytest.fixture()
def two_socket_bots(slack: SlackEmulator, bot_settings: Settings,
                    tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two production ``socket`` processes, both connected to the emulator."""
    slack.socket_mode = True
    procs: list[subprocess.Popen[bytes]] = []
    ports = [free_port(), free_port()]
    try:
        for index, port in enumerate(ports):
            env = {**settings_environment(bot_settings), "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port)}
            with (tmp_path / f"bot-{index}.log").open("wb") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", "socket"], env=env,
                                              stdout=out, stderr=subprocess.STDOUT))

        def ready(port: int) -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/readyz?exclude=kubernetes", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        for port in ports:
            wait_until(lambda: ready(port), 40)
        slack.wait_for_socket_connections(2)
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_two_socket_processes_handle_each_envelope_exactly_once(
        slack: SlackEmulator, two_socket_bots: list[subprocess.Popen[bytes]], bot_settings: Settings,
        redis_client: redis.Redis) -> None:
    slack.set_rate_limit("conversations.create", 600)  # the point is the split, not Slack's Tier 2
    for i in range(INCIDENTS):
        assert slack.slash_command("U_ALICE", "C_GENERAL", f"incident open sev2 Replica test {i}").ok
    store = IncidentStore(redis_client, get_keys(bot_settings))
    wait_until(lambda: len([i for i in store.iter_all() if i.stakeholder_ts]) == INCIDENTS, 60)
    incidents = sorted(store.iter_all(), key=lambda i: i.title)
    assert [i.title for i in incidents] == sorted(f"Replica test {i}" for i in range(INCIDENTS))
    assert len([c for c in slack.calls_to("conversations.create") if c.ok]) == INCIDENTS

    # each opener is answered once, after the set-up: wait for those before counting answers
    wait_until(lambda: sum("Opened incident" in t for t in ephemeral_texts(slack)) == INCIDENTS, 30)
    channel = incidents[0].channel_id
    posted = [slack.post_message_as_user("U_BOB", channel, f"note {n}") for n in range(COMMANDS)]
    seen = len(ephemeral_texts(slack))
    for _ in range(COMMANDS):
        assert slack.slash_command("U_ALICE", channel, "incident status").ok
    wait_until(lambda: len(ephemeral_texts(slack)) >= seen + COMMANDS, 30)
    timeline = store.timeline(incidents[0].id)
    wait_until(lambda: len(timeline.entries({"message"})) >= COMMANDS, 30)
    assert sorted(e.data["ts"] for e in timeline.entries({"message"})) == sorted(posted)
    assert len(ephemeral_texts(slack)) == seen + COMMANDS  # one answer per command, from one replica

    connections = {d.connection for d in slack.deliveries}
    assert len(connections) == 2  # both replicas did their share
    assert all(d.status == 200 for d in slack.deliveries)
    assert len(slack.socket_acks) == len(slack.deliveries) and slack.socket_unexpected == []
