"""What only Socket Mode has: connections that Slack refreshes or loses, envelopes to check, probes to answer.

The production :class:`bot.socket_mode.SocketModeLink` (Bolt on slack_sdk's Socket Mode client) runs in
this process against the emulator's real WebSocket endpoint. Slack asks apps to reconnect when told
(``refresh_requested``), survive a connection that vanishes, never to reconnect after
``link_disabled``, and to acknowledge every envelope; the bot's readiness follows the connection.
Behaviours shared with HTTP (commands, buttons, modals, the channel log) are the ``@both_transports``
tests beside this file.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid

import pytest
import requests

import bot.server

from sandbox.slack import SlackEmulator
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.fixtures.slack import RunningBot, wait_for_link

socket_mode = pytest.mark.parametrize("bot_server", ["socket"], indirect=True)


def _recorded_messages(bot: RunningBot, incident_id: str) -> list[str]:
    return [e.data["text"] for e in bot.services.store.timeline(incident_id).entries({"message"})]


@socket_mode
def test_refresh_requested_mid_incident_loses_and_doubles_nothing(slack: SlackEmulator,
                                                                 bot_server: RunningBot) -> None:
    """Messages and commands keep coming while Slack refreshes the connection: each is recorded once.

    slack_sdk's built-in client, on a refresh, closes the old connection only after its receive loop
    wakes (a 3 s receive timeout), and handles nothing meanwhile: an envelope that arrives in that
    window is acknowledged late. Slack then redelivers the event (``retry_attempt`` 1, enabled here as
    Slack does), and the bot's ``event_id`` de-duplication keeps it from being recorded twice.
    """
    slack.retry_events((0.0, 1.0))
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 Checkout errors")
    incident = open_incident(slack, bot_server)
    (old,) = slack.socket_connections
    sent: list[str] = []
    results = []

    def talk(first: int, last: int) -> None:
        for i in range(first, last):
            text = f"observation {i}"
            slack.post_message_as_user("U_BOB", incident.channel_id, text)
            sent.append(text)
        results.append(slack.slash_command("U_ALICE", incident.channel_id, f"update checkpoint {last}"))

    talk(0, 10)
    slack.socket_disconnect("refresh_requested", old, close_after=None)  # the bot must go by itself
    talk(10, 20)
    (new,) = slack.wait_for_socket_connections(1, other_than=(old.id,))
    slack.link.wait_until_closed(old)  # the bot closed the old connection itself (close_after=None)
    talk(20, 30)

    timeline = bot_server.services.store.timeline(incident.id)
    wait_until(lambda: len(timeline.entries({"status_update"})) == 3)
    wait_until(lambda: len(_recorded_messages(bot_server, incident.id)) >= 30)
    assert sorted(_recorded_messages(bot_server, incident.id)) == sorted(sent)  # none lost, none doubled
    assert sorted(e.data["text"] for e in timeline.entries({"status_update"})) == [
        f"checkpoint {n}" for n in (10, 20, 30)]
    assert all(r.status == 200 for r in results)
    assert all(d.status == 200 for d in slack.deliveries if d.retry_num is None)  # every envelope acknowledged
    late = [d for d in slack.deliveries if d.slow]
    assert len(late) <= 1  # at most the one envelope that met the refresh (see the docstring)
    assert {d.connection for d in slack.deliveries} >= {old.id, new.id}
    assert len(slack.calls_to("apps.connections.open")) == 2


@socket_mode
def test_connection_dropped_mid_work_reconnects_and_the_acknowledged_work_finishes(
        slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.delay("conversations.create", 1.5)  # the set-up after the ack takes a while
    ack = slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 Payments down")
    assert ack.ok
    wait_until(lambda: slack.in_flight("conversations.create") == 1)
    dropped = slack.socket_drop()  # the network loses the connection while the bot is working
    slack.delay("conversations.create", 0)

    incident = open_incident(slack, bot_server, timeout=20)
    assert incident.title == "Payments down" and incident.header_ts
    slack.wait_for_socket_connections(1, 60, other_than=(dropped.id,))  # noticed by its pings (bot.server)
    wait_for_link(bot_server.link)  # type: ignore[arg-type]
    seen = len(ephemeral_texts(slack))
    assert slack.slash_command("U_ALICE", incident.channel_id, "incident status").ok
    wait_until(lambda: len(ephemeral_texts(slack)) > seen)
    assert len([c for c in slack.calls_to("conversations.create") if c.ok]) == 1


@socket_mode
def test_probes_follow_the_connection_and_link_disabled_stops_reconnecting(
        slack: SlackEmulator, bot_server: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    ready = requests.get(f"{bot_server.url}/readyz?exclude=kubernetes", timeout=5)
    assert ready.status_code == 200 and ready.json()["slack"] == "ok"
    health = requests.get(f"{bot_server.url}/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["socket_mode"]["connected"] is True
    assert requests.post(f"{bot_server.url}/slack/events", data=b"{}", timeout=5).status_code == 404

    slack.socket_mode = False  # switched off in the app's settings: link_disabled on every connection
    wait_until(lambda: slack.socket_connections == [])
    assert bot_server.link is not None
    wait_until(lambda: not bot_server.link.state().connected)  # type: ignore[union-attr]
    not_ready = requests.get(f"{bot_server.url}/readyz?exclude=kubernetes", timeout=5)
    assert not_ready.status_code == 503 and "link_disabled" in not_ready.json()["slack"]
    health = requests.get(f"{bot_server.url}/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["socket_mode"]["connected"] is False  # not yet a minute
    monkeypatch.setattr(bot.server, "SOCKET_UNHEALTHY_AFTER_SECONDS", 0.0)  # as if the minute had passed
    unhealthy = requests.get(f"{bot_server.url}/healthz", timeout=5)
    assert unhealthy.status_code == 503 and unhealthy.json()["status"] == "unhealthy"
    assert bot_server.link.client.auto_reconnect_enabled is False
    assert slack.socket_connections == [] and len(slack.calls_to("apps.connections.open")) == 1


@socket_mode
def test_bad_envelopes_are_logged_acknowledged_and_dropped(slack: SlackEmulator, bot_server: RunningBot,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    (connection,) = slack.socket_connections
    calls_before, keys_before = len(slack.calls), sorted(bot_server.services.redis.keys("*"))
    other_app = {"token": "t", "team_id": "T_EMU", "api_app_id": "A_SOMEONE_ELSE", "command": "/k8s",
                 "text": "incident open sev1 Not ours", "user_id": "U_ALICE", "channel_id": "C_GENERAL",
                 "response_url": f"{slack.base_url}hooks/none", "trigger_id": "1.2.3"}
    bad = {
        "unknown envelope type": {"type": "telepathy", "payload": {"api_app_id": "A_EMU"}},
        "envelope for app A_SOMEONE_ELSE": {"type": "slash_commands", "payload": other_app,
                                            "accepts_response_payload": True},
        "block_actions needs a non-empty actions list": {
            "type": "interactive", "payload": {"type": "block_actions", "api_app_id": "A_EMU", "actions": [],
                                               "user": {"id": "U_ALICE"}}},
        "without an event object": {"type": "events_api", "payload": {"type": "event_callback",
                                                                       "api_app_id": "A_EMU", "event": "x"}},
        "payload is not an object": {"type": "interactive", "payload": [1, 2]},
    }
    ids = {}
    with caplog.at_level(logging.WARNING, logger="bot.socket_mode"):
        assert slack.socket_send_raw("{this is not json", connection)
        assert slack.socket_send_raw(json.dumps(["a", "list"]), connection)
        for problem, envelope in bad.items():
            ids[problem] = str(uuid.uuid4())
            assert slack.socket_send_raw(json.dumps({"envelope_id": ids[problem], **envelope}), connection)
        # every envelope is acknowledged (so Slack does not redeliver it) and then dropped
        wait_until(lambda: {u.text for u in slack.socket_unexpected} >= {json.dumps({"envelope_id": i})
                                                                          for i in ids.values()})
        # the connection is the same one, and still works
        assert [c.id for c in slack.socket_connections] == [connection.id]
        assert slack.slash_command("U_ALICE", "C_GENERAL", "help").ok
    dropped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dropped")]
    for problem, envelope_id in ids.items():
        assert any(envelope_id in line and problem in line for line in dropped), (problem, dropped)
    assert any("not JSON" in line for line in dropped) and any("not an object: [" in line for line in dropped)
    wait_until(lambda: any("/k8s incident open" in t for t in ephemeral_texts(slack)))  # help's answer came
    new_calls = [c.method for c in slack.calls[calls_before:]]
    assert set(new_calls) <= {"chat.postEphemeral"} or "conversations.create" not in new_calls
    assert list(bot_server.services.store.iter_all()) == []
    assert sorted(bot_server.services.redis.keys("*")) == keys_before


@socket_mode
def test_warning_disconnect_reconnects_while_commands_are_in_flight(slack: SlackEmulator,
                                                                   bot_server: RunningBot) -> None:
    """Slack's ``warning`` (the connection closes in about ten seconds): the bot moves to a new connection;
    commands in flight are acknowledged (on whichever connection is current when the ack is sent)."""
    (old,) = slack.socket_connections
    results = []
    threads = [threading.Thread(target=lambda: results.append(slack.slash_command("U_ALICE", "C_GENERAL", "help")))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    slack.socket_disconnect("warning", old)
    for thread in threads:
        thread.join(15)
    assert len(results) == 5 and all(r.status == 200 for r in results)
    slack.wait_for_socket_connections(1, other_than=(old.id,))
    slack.link.wait_until_closed(old, 15)
    wait_for_link(bot_server.link)  # type: ignore[arg-type]
    assert slack.slash_command("U_ALICE", "C_GENERAL", "help").ok
    assert slack.socket_unexpected == []
