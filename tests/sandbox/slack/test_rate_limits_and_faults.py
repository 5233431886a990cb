"""Tier rate limits (429 + Retry-After) and injected faults."""

from __future__ import annotations

import socket
import struct
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from sandbox.slack import SlackEmulator
from sandbox.slack.ratelimit import METHOD_TIERS, RateLimiter, default_limit
from sandbox.waiting import poll
from tests.sandbox.slack.conftest import TOKEN


def test_tiers_are_slacks_published_figures() -> None:
    assert (METHOD_TIERS["conversations.create"], default_limit("conversations.create")) == ("tier2", 20)
    assert (METHOD_TIERS["conversations.history"], default_limit("conversations.history")) == ("tier3", 50)
    assert (METHOD_TIERS["users.info"], default_limit("users.info")) == ("tier4", 100)
    assert METHOD_TIERS["chat.postMessage"] == "special"


def test_tier_limit_answers_429_with_retry_after(emu: SlackEmulator) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answers = [requests.post(emu.api_url + "conversations.list", headers=auth, timeout=5) for _ in range(21)]
    assert [a.status_code for a in answers[:20]] == [200] * 20
    limited = answers[20]
    assert limited.status_code == 429
    assert limited.json() == {"ok": False, "error": "ratelimited"}
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert emu.calls[-1].status == 429 and emu.calls[-1].error == "ratelimited"


def test_limits_are_per_method_and_lowerable(emu: SlackEmulator, web: WebClient) -> None:
    emu.set_rate_limit("users.info", 2)
    web.users_info(user="U_ALICE")
    web.users_info(user="U_BOB")
    with pytest.raises(SlackApiError) as caught:
        web.users_info(user="U_CAROL")
    assert caught.value.response.status_code == 429
    assert web.auth_test()["ok"]


def test_post_message_is_limited_per_channel(emu: SlackEmulator, web: WebClient) -> None:
    emu.add_channel("C_OTHER", name="other", members=["U_BOT"])
    emu.set_rate_limit("chat.postMessage", 1)
    web.chat_postMessage(channel="C_STAKE", text="one")
    web.chat_postMessage(channel="C_OTHER", text="one")
    with pytest.raises(SlackApiError) as caught:
        web.chat_postMessage(channel="C_STAKE", text="two")
    assert caught.value.response.status_code == 429


def test_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    limiter.set_limit("pins.add", 2)
    assert limiter.admit("t", "pins.add").allowed and limiter.admit("t", "pins.add").allowed
    refused = limiter.admit("t", "pins.add")
    assert not refused.allowed and refused.retry_after == 60
    now[0] = 45.5
    assert limiter.admit("t", "pins.add").retry_after == 15
    now[0] = 60.0
    assert limiter.admit("t", "pins.add").allowed


def test_injected_429_is_honoured_by_slack_sdk(emu: SlackEmulator) -> None:
    emu.rate_limit("chat.postMessage", times=1, retry_after=1)
    client = WebClient(token=TOKEN, base_url=emu.api_url,
                       retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)])
    started = time.monotonic()
    assert client.chat_postMessage(channel="C_STAKE", text="after the storm")["ok"]
    assert time.monotonic() - started >= 1
    assert [c.status for c in emu.calls_to("chat.postMessage")] == [429, 200]
    assert len(emu.messages("C_STAKE")) == 1


def test_fail_next_server_error_and_delay(emu: SlackEmulator, web: WebClient) -> None:
    emu.fail_next("conversations.create", error="name_taken", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            web.conversations_create(name="inc-x")
        assert caught.value.response["error"] == "name_taken"
    assert web.conversations_create(name="inc-x")["ok"]

    emu.server_error("chat.update", status=503)
    with pytest.raises(SlackApiError) as caught:
        web.chat_update(channel="C_STAKE", ts="1.1", text="x")
    assert caught.value.response.status_code == 503
    assert emu.calls[-1].status == 503

    emu.delay("auth.test", 0.3)
    started = time.monotonic()
    web.auth_test()
    assert time.monotonic() - started >= 0.3


def test_removed_bot_cannot_post(emu: SlackEmulator, web: WebClient) -> None:
    assert web.chat_postMessage(channel="C_STAKE", text="before")["ok"]
    emu.remove_member("C_STAKE", "U_BOT")
    with pytest.raises(SlackApiError) as caught:
        web.chat_postMessage(channel="C_STAKE", text="after")
    assert caught.value.response["error"] == "not_in_channel"
    with pytest.raises(SlackApiError) as caught:
        web.chat_postMessage(channel="C_NOWHERE", text="x")
    assert caught.value.response["error"] == "channel_not_found"


def test_a_client_resetting_mid_request_is_routine(emu: SlackEmulator, web: WebClient,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A browser or a killed bot that resets its connection while the request is read leaves no traceback on
    stderr (the stdlib's "Exception occurred during processing of request"), and the emulator serves on."""
    api = urlsplit(emu.api_url)
    for _ in range(5):
        with socket.create_connection((api.hostname, api.port), timeout=5) as raw:
            raw.sendall(b"POST /api/auth.test HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    assert web.auth_test()["ok"] is True
    poll(lambda: not [t for t in threading.enumerate() if "process_request_thread" in t.name], 10,
         "the handler threads that read the resets to finish")
    assert "Exception occurred" not in capsys.readouterr().err
