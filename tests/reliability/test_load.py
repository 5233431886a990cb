"""Load: 20 incidents open at once, 10 commands a second in total.

Every command must be acknowledged within Slack's 3 s and no channel message may be missing from
the channel logs afterwards. The suite runs a 20-second variant; ``--soak`` runs the 5-minute one.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.slack import SlackEmulator
from tests.bot.helpers import wait_until
from tests.fixtures.slack import RunningBot

INCIDENTS = 20
RATE_PER_SECOND = 10


def _drive(slack: SlackEmulator, bot: RunningBot, seconds: float) -> None:
    store = bot.services.store
    slack.set_rate_limit("chat.postMessage", None)
    for i in range(INCIDENTS):
        slack.slash_command("U_ALICE", "C_GENERAL", f"incident open sev{1 + i % 3} load incident {i}")
    wait_until(lambda: sum(1 for x in store.iter_all() if x.stakeholder_ts) == INCIDENTS, timeout=120)
    incidents = list(store.iter_all())
    sent_messages: dict[str, list[str]] = {x.id: [] for x in incidents}
    updates: dict[str, int] = {x.id: 0 for x in incidents}
    acks: list[float] = []

    def one(n: int) -> None:
        incident = incidents[n % INCIDENTS]
        kind = n % 4
        if kind == 0:
            response = slack.slash_command("U_BOB", incident.channel_id, f"update step {n}")
            updates[incident.id] += 1
        elif kind == 1:
            response = slack.slash_command("U_CAROL", incident.channel_id, "incident status")
        elif kind == 2:
            response = slack.slash_command("U_ALICE", incident.channel_id, "frobnicate")
        else:
            sent_messages[incident.id].append(
                slack.post_message_as_user("U_BOB", incident.channel_id, f"observation {n}"))
            return
        assert response.status == 200, response
        acks.append(response.elapsed_seconds)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = []
        n = 0
        while time.monotonic() - started < seconds:
            futures.append(pool.submit(one, n))
            n += 1
            time.sleep(max(0.0, started + n / RATE_PER_SECOND - time.monotonic()))
        for future in futures:
            future.result()

    assert max(acks) < 3.0, f"slowest ack {max(acks):.2f} s"
    assert slack.slow_acks == []

    def all_logged() -> bool:
        for incident in incidents:
            logged = {e.data["ts"] for e in store.timeline(incident.id).entries({"message"})}
            if not set(sent_messages[incident.id]) <= logged:
                return False
        return True

    wait_until(all_logged, timeout=60)
    wait_until(lambda: all(len(store.timeline(x.id).entries({"status_update"})) == updates[x.id]
                           for x in incidents), timeout=60)
    for incident in incidents:  # nothing doubled either
        entries = store.timeline(incident.id).entries({"message"})
        assert len(entries) == len({e.data["ts"] for e in entries})


def test_twenty_incidents_ten_commands_a_second(slack: SlackEmulator, bot_server: RunningBot) -> None:
    _drive(slack, bot_server, seconds=20)


@pytest.mark.soak
def test_soak_five_minutes(slack: SlackEmulator, bot_server: RunningBot) -> None:
    _drive(slack, bot_server, seconds=300)
