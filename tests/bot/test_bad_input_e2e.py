"""Bad input and hostile requests: a clear answer, and nothing changes."""

from __future__ import annotations

import time

import pytest

from sandbox.slack import SlackEmulator
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.fixtures.slack import RunningBot, both_transports


def _no_side_effects(slack: SlackEmulator, bot: RunningBot) -> None:
    assert [c.method for c in slack.calls if c.method.startswith(("conversations.create", "chat.postMessage"))] == []
    assert list(bot.services.store.iter_all()) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate now", "Unknown command `frobnicate`"),
        ("incident open", "The title is missing"),
        ("incident open sev7 Disk full", "Unknown severity `sev7`"),
        ("severity sev0", "Unknown severity `sev0`"),
    ],
)
@both_transports
def test_malformed_commands_answer_in_the_ack(slack: SlackEmulator, bot_server: RunningBot, text: str,
                                               expected: str) -> None:
    response = slack.slash_command("U_ALICE", "C_GENERAL", text)
    assert response.status == 200
    assert expected in response.body
    assert "Usage" in response.body or "/k8s help" in response.body
    time.sleep(0.3)
    _no_side_effects(slack, bot_server)


@both_transports
def test_command_outside_an_incident_says_so(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "update all good")
    wait_until(lambda: ephemeral_texts(slack))
    assert "works inside an incident channel" in ephemeral_texts(slack)[0]
    _no_side_effects(slack, bot_server)


@both_transports
def test_help_is_generated_from_the_registry(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "help")
    wait_until(lambda: ephemeral_texts(slack))
    # Escaped for mrkdwn: Slack would read a raw <title> as a link and drop it.
    assert "/k8s incident open [--cluster &lt;name&gt;] [sev1|sev2|sev3] &lt;title&gt;" in ephemeral_texts(slack)[0]


def test_forged_signature_is_rejected_without_side_effects(slack: SlackEmulator, bot_server: RunningBot) -> None:
    response = slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 forged", bad_signature=True)
    assert response.status == 401
    time.sleep(0.3)
    _no_side_effects(slack, bot_server)


def test_replayed_old_request_is_rejected(slack: SlackEmulator, bot_server: RunningBot) -> None:
    response = slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 replayed",
                                   timestamp=int(time.time()) - 6 * 60)
    assert response.status == 401
    time.sleep(0.3)
    _no_side_effects(slack, bot_server)


@both_transports
def test_invalid_state_change_is_refused(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev3 flaky cron")
    incident = open_incident(slack, bot_server)
    slack.slash_command("U_ALICE", incident.channel_id, "mitigate")
    wait_until(lambda: bot_server.services.store.get(incident.id).status.value == "mitigated")
    before = len(bot_server.services.store.timeline(incident.id))
    slack.slash_command("U_ALICE", incident.channel_id, "mitigate")
    wait_until(lambda: any("already mitigated" in t for t in ephemeral_texts(slack)))
    assert len(bot_server.services.store.timeline(incident.id)) == before


def test_rate_limit_storm_is_ridden_out(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.rate_limit("chat.postMessage", times=3, retry_after=1)
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 queue backlog")
    incident = open_incident(slack, bot_server, timeout=20)
    limited = [c for c in slack.calls if c.method == "chat.postMessage" and c.status == 429]
    assert len(limited) == 3
    headers = [m for m in slack.messages(incident.channel_id) if m.get("blocks")]
    assert len(headers) == 1  # retried after Retry-After, posted exactly once


@both_transports
def test_override_by_non_commander_is_refused(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 disk pressure")
    incident = open_incident(slack, bot_server)
    before = len(bot_server.services.store.timeline(incident.id))
    slack.slash_command("U_BOB", incident.channel_id, "resolve --override looks fine to me")
    wait_until(lambda: any("Only the incident commander" in t for t in ephemeral_texts(slack)))
    assert len(bot_server.services.store.timeline(incident.id)) == before
    assert bot_server.services.store.get(incident.id).is_active
