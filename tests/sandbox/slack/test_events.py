"""Events API: envelopes, retry headers, which actions produce which events, acks and retries."""

from __future__ import annotations

import json

from sandbox.slack import SlackEmulator
from tests.sandbox.slack.conftest import Reply, StubBot


def test_message_event_envelope(emu: SlackEmulator, bot: StubBot) -> None:
    ts = emu.post_message_as_user("U_ALICE", "C_STAKE", "etcd is slow")
    request = bot.wait_for(1)[0]
    assert request.headers["Content-Type"] == "application/json"
    envelope = request.payload()
    assert {k: envelope[k] for k in ("type", "team_id", "api_app_id", "token")} == {
        "type": "event_callback", "team_id": "T_EMU", "api_app_id": "A_EMU", "token": emu.verification_token}
    assert envelope["event_id"].startswith("Ev") and isinstance(envelope["event_time"], int)
    assert envelope["authorizations"][0]["user_id"] == "U_BOT"
    event = envelope["event"]
    assert {k: event[k] for k in ("type", "channel", "user", "text", "ts", "event_ts", "channel_type")} == {
        "type": "message", "channel": "C_STAKE", "user": "U_ALICE", "text": "etcd is slow", "ts": ts,
        "event_ts": ts, "channel_type": "channel"}
    assert "X-Slack-Retry-Num" not in request.headers
    assert emu.messages("C_STAKE")[0]["ts"] == ts


def test_thread_reply_event_and_no_delivery_when_down(emu: SlackEmulator, bot: StubBot) -> None:
    parent = emu.post_message_as_user("U_ALICE", "C_STAKE", "parent", deliver=False)
    reply = emu.post_message_as_user("U_BOB", "C_STAKE", "reply", thread_ts=parent)
    (request,) = bot.wait_for(1)
    event = request.payload()["event"]
    assert (event["ts"], event["thread_ts"], event["parent_user_id"]) == (reply, parent, "U_ALICE")
    assert [m["ts"] for m in emu.replies("C_STAKE", parent)] == [parent, reply]


def test_no_events_from_channels_without_the_bot(emu: SlackEmulator, bot: StubBot) -> None:
    emu.add_channel("C_RANDOM", name="random", members=["U_ALICE"])
    emu.post_message_as_user("U_ALICE", "C_RANDOM", "not for the bot")
    emu.post_message_as_user("U_ALICE", "C_STAKE", "for the bot")
    assert [r.payload()["event"]["text"] for r in bot.wait_for(1)] == ["for the bot"]


def test_edit_delete_reaction_pin_events(emu: SlackEmulator, bot: StubBot) -> None:
    ts = emu.post_message_as_user("U_BOB", "C_STAKE", "leader changed 3 times")
    emu.edit_message_as_user("U_BOB", "C_STAKE", ts, "leader changed 4 times")
    emu.add_reaction("U_ALICE", "C_STAKE", ts, "pushpin")
    emu.pin_message_as_user("U_ALICE", "C_STAKE", ts)
    other = emu.post_message_as_user("U_BOB", "C_STAKE", "oops")
    emu.delete_message_as_user("U_BOB", "C_STAKE", other)
    events = [r.payload()["event"] for r in bot.wait_for(6)]
    changed, reaction, pin, deleted = events[1], events[2], events[3], events[5]
    assert (changed["subtype"], changed["message"]["text"], changed["previous_message"]["text"]) == (
        "message_changed", "leader changed 4 times", "leader changed 3 times")
    assert changed["message"]["edited"]["user"] == "U_BOB"
    assert (reaction["type"], reaction["reaction"], reaction["item"]) == (
        "reaction_added", "pushpin", {"type": "message", "channel": "C_STAKE", "ts": ts})
    assert (pin["type"], pin["channel_id"], pin["item"]["message"]["ts"]) == ("pin_added", "C_STAKE", ts)
    assert (deleted["subtype"], deleted["deleted_ts"]) == ("message_deleted", other)
    stored = emu.messages("C_STAKE")
    assert [m["ts"] for m in stored] == [ts]
    assert stored[0]["pinned"] and stored[0]["reactions"] == [{"name": "pushpin", "users": ["U_ALICE"], "count": 1}]
    assert emu.pins("C_STAKE")[0]["ts"] == ts


def test_raw_event_with_retry_headers(emu: SlackEmulator, bot: StubBot) -> None:
    event = {"type": "message", "channel": "C_STAKE", "user": "U_BOB", "text": "dup", "ts": "1.000001"}
    emu.send_event(event, event_id="Ev_DUP")
    emu.send_event(event, event_id="Ev_DUP", retry_num=1)
    first, retry = bot.wait_for(2)
    assert first.payload()["event_id"] == retry.payload()["event_id"] == "Ev_DUP"
    assert (retry.headers["X-Slack-Retry-Num"], retry.headers["X-Slack-Retry-Reason"]) == ("1", "http_timeout")


def test_url_verification(emu: SlackEmulator, bot: StubBot) -> None:
    bot.responder = lambda r: Reply(body=json.dumps({"challenge": r.payload()["challenge"]}))
    response = emu.url_verification()
    assert response.ok and response.json()["challenge"] == bot.received[0].payload()["challenge"]


def test_slow_acks_are_flagged(emu: SlackEmulator, bot: StubBot) -> None:
    emu.client.ack_deadline_seconds = 0.2
    bot.responder = lambda r: Reply(delay=0.3)
    response = emu.slash_command("U_ALICE", "C_STAKE", "status")
    assert response.elapsed_seconds >= 0.3
    assert [d.kind for d in emu.slow_acks] == ["slash_command"]
    bot.responder = lambda r: Reply()
    emu.post_message_as_user("U_ALICE", "C_STAKE", "fast")
    assert len(emu.slow_acks) == 1 and len(emu.deliveries) == 2


def test_failed_events_are_retried_like_slack(emu: SlackEmulator, bot: StubBot) -> None:
    emu.retry_events((0.0, 0.05, 0.05))
    answers = iter([Reply(status=500), Reply(status=500), Reply()])
    bot.responder = lambda r: next(answers)
    emu.post_message_as_user("U_ALICE", "C_STAKE", "flaky bot")
    requests_ = bot.wait_for(3)
    assert [r.headers.get("X-Slack-Retry-Num") for r in requests_] == [None, "1", "2"]
    assert {r.headers.get("X-Slack-Retry-Reason") for r in requests_[1:]} == {"http_error"}
    assert len({r.payload()["event_id"] for r in requests_}) == 1


def test_no_retry_header_is_respected(emu: SlackEmulator, bot: StubBot) -> None:
    emu.retry_events((0.0,))
    bot.responder = lambda r: Reply(status=500, headers={"X-Slack-No-Retry": "1"})
    emu.post_message_as_user("U_ALICE", "C_STAKE", "please do not retry")
    bot.wait_for(1)
    assert len(emu.deliveries) == 1 and emu.deliveries[0].status == 500
