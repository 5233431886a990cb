"""SIGTERM (a rolling update, a node drain) while the bot is mid-way through work it already acknowledged to
Slack: the production ``serve`` process stops taking requests (``socket``: closes its connection, so Slack
sends the next envelopes to the app's other connections), finishes that work, then exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from incident.settings import Settings
from persistence.store import IncidentStore
from sandbox.ports import free_port
from sandbox.slack import SlackEmulator
from tests.bot.helpers import wait_until
from tests.fixtures.workers import settings_environment
from persistence.connection import get_keys


@pytest.mark.parametrize("command", ["serve", "socket"])
def test_sigterm_after_the_ack_still_finishes_opening_the_incident(
        slack: SlackEmulator, bot_settings: Settings, redis_client: redis.Redis, tmp_path: Path, command: str) -> None:
    port = free_port()
    env = {**settings_environment(bot_settings), "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port)}
    log = tmp_path / "bot.log"
    slack.socket_mode = command == "socket"
    with log.open("wb") as out:
        bot = subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", command], env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:  # socket: up and connected (readiness includes the Socket Mode link)
            try:
                url = f"http://127.0.0.1:{port}/readyz?exclude=kubernetes"
                return requests.get(url, timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(ready, 30)
        if command == "serve":
            slack.request_url = f"http://127.0.0.1:{port}/slack/events"
        slack.delay("conversations.create", 2.0)  # the set-up after the ack takes a while

        ack = slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 Checkout down")
        assert ack.status == 200
        wait_until(lambda: slack.in_flight("conversations.create") == 1, 10)  # the work is under way …
        bot.send_signal(signal.SIGTERM)  # … when the pod is told to stop
        stopped_at = time.monotonic()
        assert bot.wait(timeout=30) == 0, log.read_text()
        assert time.monotonic() - stopped_at >= 1.0  # it waited for the work instead of dying at once
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait(timeout=10)

    store = IncidentStore(redis_client, get_keys(bot_settings))
    (incident,) = list(store.iter_all())
    assert incident.title == "Checkout down" and incident.stakeholder_ts and incident.header_ts
    channel = slack.channels[incident.channel_id]
    assert channel.name.endswith("checkout-down")
    assert [m["ts"] for m in slack.pins(incident.channel_id)] == [incident.header_ts]
    assert "finishing the work already acknowledged" in log.read_text()
    if command == "socket":
        wait_until(lambda: slack.socket_connections == [])  # its connection went with it
