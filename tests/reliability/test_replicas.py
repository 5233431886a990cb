"""Two bot replicas behind a real round-robin front (Debian's HAProxy), restarted one after the other
while status updates flow: every acknowledged update lands exactly once, in its incident channel and in
its stakeholder thread, and is on the timeline once.

The replicas are the production ``serve`` processes sharing one Redis. A replica being replaced is
SIGTERMed (as Kubernetes does): it stops taking requests (the front's health check takes it out of
rotation and refused connections are retried on the other replica), finishes what it acknowledged,
and leaves its queued Slack posts in Redis for the other replica's drainers.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from incident.settings import Settings
from persistence.connection import get_keys
from persistence.outbox import OutboxStore
from persistence.store import IncidentStore
from sandbox.front import HaproxyFront
from sandbox.ports import free_port
from sandbox.slack import SlackEmulator
from tests.bot.helpers import wait_until
from tests.fixtures.slack import STAKEHOLDER_CHANNEL
from tests.fixtures.workers import settings_environment


class Replica:
    """One ``k8s-incident-bot serve`` process on a fixed port (restarted on the same port)."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = {**env, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port)}
        self.port, self.log = port, log
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_codes: list[int] = []

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", "serve"], env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT)
        wait_until(self.healthy, 30)

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.exit_codes.append(self.process.wait(timeout=40))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.exit_codes.append(self.process.wait())
        self.process = None


@pytest.fixture()
def replicas(slack: SlackEmulator, bot_settings: Settings, tmp_path: Path) -> Iterator[list[Replica]]:
    env = settings_environment(bot_settings)
    group = [Replica(env, free_port(), tmp_path / f"bot-{i}.log") for i in range(2)]
    try:
        for replica in group:
            replica.start()
        yield group
    finally:
        for replica in group:
            replica.stop(signal.SIGKILL if replica.process and replica.process.poll() is None else signal.SIGTERM)


def test_a_rolling_restart_under_load_loses_and_doubles_nothing(slack: SlackEmulator, bot_settings: Settings,
                                                                redis_client: redis.Redis,
                                                                replicas: list[Replica]) -> None:
    store = IncidentStore(redis_client, get_keys(bot_settings))
    with HaproxyFront([r.port for r in replicas]) as front:
        slack.request_url = f"{front.url}/slack/events"
        for title in ("API down", "DNS flapping", "Payments slow"):
            slack.slash_command("U_ALICE", "C_GENERAL", f"incident open sev1 {title}")
        wait_until(lambda: len([i for i in store.iter_all() if i.stakeholder_ts]) == 3, 30)
        incidents = list(store.iter_all())

        acked: list[tuple[str, str]] = []
        refused: list[int] = []
        stop = threading.Event()

        def load() -> None:
            n = 0
            while not stop.is_set():
                incident = incidents[n % len(incidents)]
                marker = f"roll-{n:04d}"
                response = slack.slash_command("U_BOB", incident.channel_id, f"update {marker}")
                (acked.append((marker, incident.id)) if response.status == 200 else refused.append(response.status))
                n += 1
                stop.wait(0.5)  # ~2/s: below the stakeholder channel's allowance over the test (60 a minute)

        sender = threading.Thread(target=load, name="load", daemon=True)
        sender.start()
        try:
            time.sleep(2)
            for replica in replicas:  # one after the other, as a Deployment's rolling update does
                replica.stop(signal.SIGTERM)
                time.sleep(1)
                replica.start()
                time.sleep(2)
        finally:
            stop.set()
            sender.join(timeout=30)

    assert [code for r in replicas for code in r.exit_codes] == [0, 0], "a replica did not stop cleanly"
    assert len(acked) >= 15, (len(acked), refused)
    by_incident = {i.id: i for i in incidents}

    def landed(marker: str, incident_id: str) -> tuple[int, int, int]:
        incident = by_incident[incident_id]
        in_channel = sum(marker in str(m.get("text", "")) for m in slack.messages(incident.channel_id) if m.get("bot_id"))
        assert incident.stakeholder_ts
        in_thread = sum(marker in str(m.get("text", "")) for m in slack.replies(STAKEHOLDER_CHANNEL, incident.stakeholder_ts)
                        if m.get("bot_id"))
        on_timeline = sum(e.data.get("text") == marker for e in store.timeline(incident_id).entries({"status_update"}))
        return in_channel, in_thread, on_timeline

    wait_until(lambda: all(landed(m, i) == (1, 1, 1) for m, i in acked), 120)
    assert OutboxStore(redis_client, get_keys(bot_settings)).pending() == 0
    doubled = [(m, landed(m, i)) for m, i in acked if landed(m, i) != (1, 1, 1)]
    assert not doubled
    print(f"{len(acked)} updates acknowledged through two rolling restarts, each landed once; "
          f"{len(refused)} refused by the front while both were briefly out")
