"""conversations.create naming rules, name_taken, invitations, topic and purpose."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import SlackEmulator


def _error(call: object) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.response["error"])


def test_create_makes_the_bot_a_member_and_records_the_call(emu: SlackEmulator, web: WebClient) -> None:
    channel = web.conversations_create(name="inc-20240101-api-down")["channel"]
    assert channel["name"] == "inc-20240101-api-down" and channel["is_member"] is True
    assert emu.channel_by_name("inc-20240101-api-down").members == ["U_BOT"]
    assert [(c.method, c.ok, c.params) for c in emu.calls] == [
        ("conversations.create", True, {"name": "inc-20240101-api-down"})]


def test_existing_name_is_taken(emu: SlackEmulator, web: WebClient) -> None:
    emu.add_channel("C_OLD", name="inc-dns", members=[])
    assert _error(lambda: web.conversations_create(name="inc-dns")) == "name_taken"
    assert emu.calls_to("conversations.create")[0].error == "name_taken"
    assert web.conversations_create(name="inc-dns-2")["ok"]


@pytest.mark.parametrize(("name", "code"), [
    ("", "invalid_name_required"),
    ("x" * 81, "invalid_name_maxlength"),
    ("Upper-Case", "invalid_name_specials"),
    ("has space", "invalid_name_specials"),
    ("dots.are.bad", "invalid_name_specials"),
    ("ünïcode", "invalid_name_specials"),
    ("---", "invalid_name_punctuation"),
])
def test_invalid_names(web: WebClient, name: str, code: str) -> None:
    assert _error(lambda: web.conversations_create(name=name)) == code


def test_longest_valid_name(web: WebClient) -> None:
    assert web.conversations_create(name="a" * 80)["ok"]


def test_invite_errors(emu: SlackEmulator, web: WebClient) -> None:
    channel_id = web.conversations_create(name="inc-invite")["channel"]["id"]
    assert web.conversations_invite(channel=channel_id, users="U_ALICE,U_BOB")["ok"]
    assert _error(lambda: web.conversations_invite(channel=channel_id, users="U_ALICE")) == "already_in_channel"
    assert _error(lambda: web.conversations_invite(channel=channel_id, users="U_NOBODY")) == "user_not_found"
    assert _error(lambda: web.conversations_invite(channel=channel_id, users="U_BOT")) == "cant_invite_self"
    assert _error(lambda: web.conversations_invite(channel="C_MISSING", users="U_BOB")) == "channel_not_found"
    emu.add_channel("C_OUTSIDE", name="outside", members=["U_ALICE"])
    assert _error(lambda: web.conversations_invite(channel="C_OUTSIDE", users="U_BOB")) == "not_in_channel"


def test_invite_is_all_or_nothing_unless_forced(emu: SlackEmulator, web: WebClient) -> None:
    channel_id = web.conversations_create(name="inc-force")["channel"]["id"]
    with pytest.raises(SlackApiError) as caught:
        web.conversations_invite(channel=channel_id, users="U_CAROL,U_GHOST")
    assert caught.value.response["errors"] == [{"user": "U_GHOST", "ok": False, "error": "user_not_found"}]
    assert "U_CAROL" not in emu.channels[channel_id].members
    forced = web.conversations_invite(channel=channel_id, users="U_CAROL,U_GHOST", force=True)
    assert forced["ok"] and "U_CAROL" in emu.channels[channel_id].members


def test_topic_purpose_and_join_messages(emu: SlackEmulator, web: WebClient) -> None:
    channel_id = web.conversations_create(name="inc-topic")["channel"]["id"]
    web.conversations_invite(channel=channel_id, users="U_BOB")
    topic = web.conversations_setTopic(channel=channel_id, topic="SEV1 | open")["channel"]["topic"]
    assert topic["value"] == "SEV1 | open"
    web.conversations_setPurpose(channel=channel_id, purpose="API down")
    assert _error(lambda: web.conversations_setTopic(channel=channel_id, topic="x" * 251)) == "too_long"
    channel = emu.channels[channel_id]
    assert (channel.topic, channel.purpose) == ("SEV1 | open", "API down")
    assert emu.messages(channel_id) == []
    subtypes = [m["subtype"] for m in emu.messages(channel_id, include_system=True)]
    assert subtypes == ["channel_join", "channel_join", "channel_topic", "channel_purpose"]
    history = web.conversations_history(channel=channel_id)["messages"]
    assert [m["subtype"] for m in history] == list(reversed(subtypes))


def test_topic_needs_membership(emu: SlackEmulator, web: WebClient) -> None:
    emu.add_channel("C_ELSEWHERE", name="elsewhere", members=["U_ALICE"])
    assert _error(lambda: web.conversations_setTopic(channel="C_ELSEWHERE", topic="hi")) == "not_in_channel"
    assert web.conversations_join(channel="C_ELSEWHERE")["ok"]
    assert web.conversations_setTopic(channel="C_ELSEWHERE", topic="hi")["ok"]
    assert web.conversations_join(channel="C_ELSEWHERE")["warning"] == "already_in_channel"


def test_archived_channel_refuses_writes(emu: SlackEmulator, web: WebClient) -> None:
    emu.archive_channel("C_STAKE")
    assert _error(lambda: web.chat_postMessage(channel="C_STAKE", text="hello")) == "is_archived"
