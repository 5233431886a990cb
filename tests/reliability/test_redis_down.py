"""Redis down for minutes, not restarted: commands get a clear ephemeral answer (never a traceback, never a
false "done"), the bot stays up, ``/readyz`` says why, and everything works again once Redis is back."""

from __future__ import annotations

import requests

from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.fixtures.slack import RunningBot


def test_commands_while_redis_is_down_are_told_so_and_the_bot_recovers(
        slack: SlackEmulator, bot_server: RunningBot, redis_server: RedisServer) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 Queue backlog")
    incident = open_incident(slack, bot_server)
    redis_server.stop()
    try:
        before = len(slack.ephemeral)
        for text in ("incident status", "update still investigating", "severity sev1"):
            assert slack.slash_command("U_ALICE", incident.channel_id, text).status == 200  # acknowledged
        wait_until(lambda: len(slack.ephemeral) >= before + 3, 30)
        answers = ephemeral_texts(slack)[before:]
        assert all("state store (Redis) is unavailable" in a and "may not have been carried out" in a
                   for a in answers), answers
        assert not any("Traceback" in a or "Status update posted" in a or "Severity is now" in a for a in answers)
        assert requests.get(f"{bot_server.url}/healthz", timeout=5).status_code == 200  # still up
        ready = requests.get(f"{bot_server.url}/readyz?exclude=kubernetes", timeout=10)
        assert ready.status_code == 503 and "ConnectionError" in ready.json()["redis"]
    finally:
        redis_server.start()
    wait_until(lambda: requests.get(f"{bot_server.url}/readyz?exclude=kubernetes", timeout=10).status_code == 200, 30)
    slack.slash_command("U_ALICE", incident.channel_id, "update back to normal")
    wait_until(lambda: bot_server.services.store.timeline(incident.id).entries({"status_update"}), 20)
    assert [e.data["text"] for e in bot_server.services.store.timeline(incident.id).entries({"status_update"})] == [
        "back to normal"]
