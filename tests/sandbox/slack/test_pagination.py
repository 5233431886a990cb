"""conversations.history and conversations.replies: cursors across pages, windows, ordering."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import SlackEmulator


def _all_pages(web: WebClient, method: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    messages: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        body = web.api_call(method, http_verb="GET", params={**params, **({"cursor": cursor} if cursor else {})})
        pages += 1
        messages.extend(body["messages"])
        cursor = (body.get("response_metadata") or {}).get("next_cursor")
        assert bool(cursor) == body["has_more"]
        if not cursor:
            return messages, pages


def test_history_pages_newest_first_without_gaps_or_duplicates(emu: SlackEmulator, web: WebClient) -> None:
    posted = [emu.post_message_as_user("U_ALICE", "C_STAKE", f"m{i}", deliver=False) for i in range(250)]
    messages, pages = _all_pages(web, "conversations.history", channel="C_STAKE", limit=100)
    assert pages == 3
    assert [m["ts"] for m in messages] == list(reversed(posted))


def test_history_excludes_thread_replies_but_counts_them(emu: SlackEmulator, web: WebClient) -> None:
    parent = emu.post_message_as_user("U_ALICE", "C_STAKE", "parent", deliver=False)
    emu.post_message_as_user("U_BOB", "C_STAKE", "reply", thread_ts=parent, deliver=False)
    messages = web.conversations_history(channel="C_STAKE")["messages"]
    assert [m["text"] for m in messages] == ["parent"]
    assert (messages[0]["reply_count"], messages[0]["thread_ts"], messages[0]["reply_users"]) == (1, parent, ["U_BOB"])


def test_history_window_and_inclusive(emu: SlackEmulator, web: WebClient) -> None:
    ts = [emu.post_message_as_user("U_ALICE", "C_STAKE", f"m{i}", deliver=False) for i in range(5)]
    between = web.conversations_history(channel="C_STAKE", oldest=ts[1], latest=ts[3])["messages"]
    assert [m["ts"] for m in between] == [ts[2]]
    inclusive = web.conversations_history(channel="C_STAKE", oldest=ts[1], latest=ts[3], inclusive=True)["messages"]
    assert [m["ts"] for m in inclusive] == [ts[3], ts[2], ts[1]]


def test_history_needs_membership_and_valid_cursor(emu: SlackEmulator, web: WebClient) -> None:
    emu.add_channel("C_PUBLIC", name="public", members=["U_ALICE"])
    with pytest.raises(SlackApiError) as caught:
        web.conversations_history(channel="C_PUBLIC")
    assert caught.value.response["error"] == "not_in_channel"
    with pytest.raises(SlackApiError) as caught:
        web.conversations_history(channel="C_STAKE", cursor="not-a-cursor")
    assert caught.value.response["error"] == "invalid_cursor"


def test_replies_parent_first_then_paged_oldest_first(emu: SlackEmulator, web: WebClient) -> None:
    parent = emu.post_message_as_user("U_ALICE", "C_STAKE", "parent", deliver=False)
    replies = [emu.post_message_as_user("U_BOB", "C_STAKE", f"r{i}", thread_ts=parent, deliver=False)
               for i in range(205)]
    messages, pages = _all_pages(web, "conversations.replies", channel="C_STAKE", ts=parent, limit=100)
    assert pages == 3
    assert [m["ts"] for m in messages] == [parent, *replies]
    assert messages[0]["reply_count"] == 205
    assert all(m["thread_ts"] == parent and m["parent_user_id"] == "U_ALICE" for m in messages[1:])


def test_replies_of_unknown_thread(web: WebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        web.conversations_replies(channel="C_STAKE", ts="1.000001")
    assert caught.value.response["error"] == "thread_not_found"


def test_members_and_list_paginate(emu: SlackEmulator, web: WebClient) -> None:
    for i in range(5):
        emu.add_user(f"U_{i}", name=f"user{i}")
    emu.add_channel("C_BIG", name="big", members=["U_BOT", *(f"U_{i}" for i in range(5))])
    first = web.conversations_members(channel="C_BIG", limit=4)
    second = web.conversations_members(channel="C_BIG", limit=4, cursor=first["response_metadata"]["next_cursor"])
    assert first["members"] + second["members"] == ["U_BOT", "U_0", "U_1", "U_2", "U_3", "U_4"]
    assert second["response_metadata"]["next_cursor"] == ""
    names = [c["name"] for page in web.conversations_list(limit=1) for c in page["channels"]]
    assert names == ["stakeholders", "big"]
