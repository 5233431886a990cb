"""Message metadata: posted with chat.postMessage, read back only when history/replies ask for it."""

from __future__ import annotations

from slack_sdk import WebClient

from sandbox.slack import SlackEmulator

METADATA = {"event_type": "incident_bot_post", "event_payload": {"post_id": "INC-1:header"}}


def test_metadata_comes_back_only_with_include_all_metadata(emu: SlackEmulator, web: WebClient) -> None:
    parent = web.chat_postMessage(channel="C_STAKE", text="header", metadata=METADATA)
    web.chat_postMessage(channel="C_STAKE", text="reply", thread_ts=parent["ts"], metadata=METADATA)

    plain = web.conversations_history(channel="C_STAKE")["messages"]
    assert [m["text"] for m in plain] == ["header"] and "metadata" not in plain[0]
    assert all("metadata" not in m for m in web.conversations_replies(channel="C_STAKE", ts=parent["ts"])["messages"])

    full = web.conversations_history(channel="C_STAKE", include_all_metadata=True)["messages"]
    assert full[0]["metadata"] == METADATA
    replies = web.conversations_replies(channel="C_STAKE", ts=parent["ts"], include_all_metadata=True)["messages"]
    assert [m["metadata"] for m in replies] == [METADATA, METADATA]
