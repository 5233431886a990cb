"""Slack failing under the bot: lost answers, server errors, timeouts, removal from the channel.

Every post is made exactly once: the bot tags posts with a unique id in message metadata and, after
an ambiguous failure, looks for it before posting again.
"""

from __future__ import annotations

import threading

import pytest

from chat.client import SlackClient
from incident.errors import SlackApiError
from incident.settings import Settings
from sandbox.slack import SlackEmulator

CHANNEL = "C_WAR"


@pytest.fixture()
def client(slack: SlackEmulator, bot_settings: Settings) -> SlackClient:
    slack.add_channel(CHANNEL, name="war-room", members=[slack.bot_user_id])
    return SlackClient(bot_settings, timeout=1)


def _posts(slack: SlackEmulator, text: str) -> list[dict[str, object]]:
    return [m for m in slack.messages(CHANNEL) if m.get("text") == text]


def test_answer_lost_after_posting_is_not_reposted(slack: SlackEmulator, client: SlackClient) -> None:
    slack.server_error("chat.postMessage", times=1, status=500, processed=True)
    ts = client.post_message(CHANNEL, "etcd leader lost")
    assert [m["ts"] for m in _posts(slack, "etcd leader lost")] == [ts]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [500]


def test_server_errors_before_posting_are_retried_with_backoff(slack: SlackEmulator, client: SlackClient) -> None:
    slack.server_error("chat.postMessage", times=2, status=503)
    ts = client.post_message(CHANNEL, "nodes recovering")
    assert [m["ts"] for m in _posts(slack, "nodes recovering")] == [ts]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [503, 503, 200]
    calls = slack.calls_to("chat.postMessage")
    assert calls[2].ts - calls[1].ts >= 1.5  # backed off 1 s, then 2 s


def test_timed_out_post_that_lands_later_is_found_not_duplicated(slack: SlackEmulator, client: SlackClient) -> None:
    slack.delay("chat.postMessage", 1.5)
    threading.Timer(0.3, lambda: slack.delay("chat.postMessage", 0)).start()
    ts = client.post_message(CHANNEL, "DNS back")
    assert [m["ts"] for m in _posts(slack, "DNS back")] == [ts]


def test_persistent_failure_is_raised_after_bounded_attempts(slack: SlackEmulator, client: SlackClient) -> None:
    slack.server_error("chat.postMessage", times=10, status=500)
    with pytest.raises(SlackApiError) as caught:
        client.post_message(CHANNEL, "never")
    assert caught.value.code == "internal_error"
    assert len(slack.calls_to("chat.postMessage")) == 4
    assert _posts(slack, "never") == []


def test_removed_bot_rejoins_a_public_channel_and_posts(slack: SlackEmulator, client: SlackClient) -> None:
    slack.remove_member(CHANNEL, slack.bot_user_id)
    ts = client.post_message(CHANNEL, "still here")
    assert [m["ts"] for m in _posts(slack, "still here")] == [ts]
    assert [c.method for c in slack.calls if c.method != "auth.test"][-3:] == [
        "chat.postMessage", "conversations.join", "chat.postMessage"]


def test_removed_from_an_archived_channel_says_what_to_do(slack: SlackEmulator, client: SlackClient) -> None:
    slack.remove_member(CHANNEL, slack.bot_user_id)
    slack.archive_channel(CHANNEL)
    with pytest.raises(SlackApiError) as caught:
        client.post_message(CHANNEL, "lost")
    assert caught.value.code in ("not_in_channel", "is_archived")
