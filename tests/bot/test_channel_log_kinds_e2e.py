"""Every kind of channel-log event, over HTTP and Socket Mode, each recorded once though Slack sends it twice.

People post, reply, edit, delete, react and pin in the incident channel; then every one of those
events is delivered again as Slack's retry (same ``event_id``, ``retry_num`` 1: the
``X-Slack-Retry-Num`` header over HTTP, ``retry_attempt`` in the envelope over Socket Mode). The
timeline holds each once: the bot de-duplicates by ``event_id`` before anything is recorded.
"""

from __future__ import annotations

from collections import Counter

from sandbox.slack import SlackEmulator
from tests.bot.helpers import open_incident, wait_until
from tests.fixtures.slack import RunningBot, both_transports

KINDS = ("message", "message_edited", "message_deleted", "reaction_added", "pin_added")


@both_transports
def test_each_kind_of_event_is_recorded_once_despite_retries(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 Disk pressure")
    incident = open_incident(slack, bot_server)
    channel = incident.channel_id
    first = len(slack.events_sent)
    ts = slack.post_message_as_user("U_BOB", channel, "node-3 disk at 97%")
    slack.post_message_as_user("U_CAROL", channel, "log rotation stuck", thread_ts=ts)
    slack.edit_message_as_user("U_BOB", channel, ts, "node-3 disk at 98%")
    oops = slack.post_message_as_user("U_BOB", channel, "wrong channel, sorry")
    slack.delete_message_as_user("U_BOB", channel, oops)
    slack.add_reaction("U_ALICE", channel, ts, "pushpin")
    slack.pin_message_as_user("U_ALICE", channel, ts)
    delivered = slack.events_sent[first:]
    assert len(delivered) == 7

    timeline = bot_server.services.store.timeline(incident.id)

    def counts() -> Counter[str]:
        return Counter(str(e.kind) for e in timeline.entries(set(KINDS)))

    expected = Counter({"message": 3, "message_edited": 1, "message_deleted": 1, "reaction_added": 1,
                        "pin_added": 1})
    wait_until(lambda: counts() == expected)
    for event_id, event in delivered:  # Slack retries every one of them
        assert slack.send_event(event, event_id=event_id, retry_num=1).status == 200
    assert counts() == expected  # the repeats were dropped before their acknowledgement
