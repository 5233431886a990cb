"""The channel log: events recorded once despite retries; a back-fill after downtime misses nothing."""

from __future__ import annotations

from bot.backfill import backfill_active_incidents
from sandbox.slack import SlackEmulator
from tests.bot.helpers import open_incident, wait_until
from tests.fixtures.slack import RunningBot, both_transports


def _messages(bot: RunningBot, incident_id: str) -> list[str]:
    return [e.data["ts"] for e in bot.services.store.timeline(incident_id).entries({"message"})]


@both_transports
def test_events_and_their_retries_are_recorded_once(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 etcd slow")
    incident = open_incident(slack, bot_server)
    ts = slack.post_message_as_user("U_BOB", incident.channel_id, "etcd leader changed 3 times")
    reply_ts = slack.post_message_as_user("U_CAROL", incident.channel_id, "disk latency high", thread_ts=ts)
    slack.add_reaction("U_ALICE", incident.channel_id, ts, "pushpin")
    slack.edit_message_as_user("U_BOB", incident.channel_id, ts, "etcd leader changed 4 times")
    wait_until(lambda: len(_messages(bot_server, incident.id)) == 2)
    timeline = bot_server.services.store.timeline(incident.id)
    wait_until(lambda: timeline.entries({"message_edited"}) and timeline.entries({"reaction_added"}))

    event = {"type": "message", "channel": incident.channel_id, "user": "U_BOB", "text": "dup", "ts": "1.000001",
             "event_ts": "1.000001", "channel_type": "channel"}
    first = slack.send_event(event, event_id="Ev_DUP")
    retry = slack.send_event(event, event_id="Ev_DUP", retry_num=1)
    assert first.status == 200 and retry.status == 200
    wait_until(lambda: "1.000001" in _messages(bot_server, incident.id))
    assert sorted(_messages(bot_server, incident.id)) == sorted([ts, reply_ts, "1.000001"])
    replies = [e for e in timeline.entries({"message"}) if e.data["ts"] == reply_ts]
    assert replies[0].data["thread_ts"] == ts


def test_backfill_after_downtime_follows_cursors_without_duplicates(slack: SlackEmulator,
                                                                     bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 node failure")
    incident = open_incident(slack, bot_server)
    live = slack.post_message_as_user("U_BOB", incident.channel_id, "seen live")
    wait_until(lambda: live in _messages(bot_server, incident.id))

    missed: list[str] = []
    for i in range(230):  # more than one page of history (the bot asks for 200 per page)
        missed.append(slack.post_message_as_user("U_CAROL", incident.channel_id, f"missed {i}", deliver=False))
    parent = missed[10]
    for i in range(205):  # a thread longer than one page too
        missed.append(slack.post_message_as_user("U_BOB", incident.channel_id, f"reply {i}", thread_ts=parent,
                                                 deliver=False))

    added = backfill_active_incidents(bot_server.services)
    assert added[incident.id] >= len(missed)
    recorded = _messages(bot_server, incident.id)
    assert set(missed) <= set(recorded)
    assert len(recorded) == len(set(recorded))
    history_calls = [c for c in slack.calls if c.method == "conversations.history"]
    assert any(c.params.get("cursor") for c in history_calls)

    assert backfill_active_incidents(bot_server.services)[incident.id] == 0
