"""Socket Mode as Slack documents it, against a plain WebSocket client playing the app.

The app side here is the ``websockets`` library's client with a few lines of policy (acknowledge or
not, with or without a payload), so what is tested is the emulator's half of the protocol:
``apps.connections.open`` and its token rules, one-time URLs, ``hello``, the three envelope types and
their fields, acknowledgements by ``envelope_id``, redelivery of unacknowledged events, ``disconnect``
and its reasons, and envelopes spread over several connections, each delivered to exactly one.
"""

from __future__ import annotations

import json
import queue
import threading
from contextlib import ExitStack
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from sandbox.slack import SlackEmulator
from tests.bot.helpers import wait_until
from tests.sandbox.slack.conftest import TOKEN

Policy = Callable[[dict[str, Any]], dict[str, Any] | None]
"""What the app answers to an envelope: the acknowledgement to send, or ``None`` to stay silent."""


def ack(envelope: dict[str, Any]) -> dict[str, Any] | None:
    return {"envelope_id": envelope["envelope_id"]}


class SocketApp:
    """A WebSocket client on one Socket Mode URL that records every frame and answers by ``policy``."""

    def __init__(self, url: str, policy: Policy = ack) -> None:
        self._context = ExitStack()
        self.ws: ClientConnection = self._context.enter_context(connect(url, open_timeout=5))
        self.policy = policy
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.envelopes: list[dict[str, Any]] = []
        self.closed = threading.Event()
        self.hello = json.loads(self.ws.recv(timeout=5))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                frame = json.loads(text)
                if "envelope_id" in frame:
                    self.envelopes.append(frame)
                    answer = self.policy(frame)
                    if answer is not None:
                        self.ws.send(json.dumps(answer))
                else:
                    self.frames.put(frame)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def next_frame(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame that is not an envelope (``disconnect``)."""
        return self.frames.get(timeout=timeout)

    def close(self) -> None:
        self._context.close()


def open_url(emu: SlackEmulator) -> str:
    return str(WebClient(base_url=emu.api_url, retry_handlers=[]).apps_connections_open(app_token=emu.app_token)["url"])


@pytest.fixture()
def apps(emu: SlackEmulator) -> Iterator[Callable[..., SocketApp]]:
    """``apps(policy=ack)`` connects one more app connection; all are closed after the test."""
    emu.socket_mode = True
    opened: list[SocketApp] = []

    def make(policy: Policy = ack) -> SocketApp:
        app = SocketApp(open_url(emu), policy)
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.close()


def test_connections_open_takes_the_app_level_token_in_the_header_only(emu: SlackEmulator) -> None:
    url = open_url(emu)
    assert url.startswith("ws://127.0.0.1:") and "/link/?ticket=" in url and url.endswith("&app_id=A_EMU")
    errors = {}
    for name, call in {
        "bot token": lambda: WebClient(token=TOKEN, base_url=emu.api_url).apps_connections_open(app_token=TOKEN),
        "unknown token": lambda: WebClient(base_url=emu.api_url).apps_connections_open(app_token="xapp-1-nope"),
        "form field": lambda: WebClient(base_url=emu.api_url).api_call(
            "apps.connections.open", data={"token": emu.app_token}),
        "no token": lambda: WebClient(base_url=emu.api_url).api_call("apps.connections.open"),
        "app token on a bot method": lambda: WebClient(token=emu.app_token, base_url=emu.api_url).auth_test(),
    }.items():
        with pytest.raises(SlackApiError) as refused:
            call()
        errors[name] = refused.value.response["error"]
    assert errors == {"bot token": "not_allowed_token_type", "unknown token": "invalid_auth",
                      "form field": "not_authed", "no token": "not_authed",
                      "app token on a bot method": "not_allowed_token_type"}


def test_hello_and_one_time_urls(emu: SlackEmulator, apps: Callable[..., SocketApp]) -> None:
    url = open_url(emu)
    first = SocketApp(url)
    try:
        assert first.hello["type"] == "hello" and first.hello["num_connections"] == 1
        assert first.hello["connection_info"] == {"app_id": "A_EMU"}
        assert set(first.hello["debug_info"]) == {"host", "build_number", "approximate_connection_time"}
        with pytest.raises(InvalidStatus) as reused, connect(url, open_timeout=5):
            pass
        assert reused.value.response.status_code == 401
        second = apps()
        assert second.hello["num_connections"] == 2
        assert emu.link.refused == ["ticket_already_used"]
    finally:
        first.close()


def test_slash_command_envelope_and_its_acknowledgement_payload(emu: SlackEmulator,
                                                                 apps: Callable[..., SocketApp]) -> None:
    app = apps(lambda e: {"envelope_id": e["envelope_id"], "payload": {"text": "On it."}})
    response = emu.slash_command("U_ALICE", "C_STAKE", "incident open sev1 API down")
    (envelope,) = app.envelopes
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
    assert "retry_attempt" not in envelope
    payload = envelope["payload"]
    assert (payload["command"], payload["text"], payload["user_id"], payload["api_app_id"]) == (
        "/k8s", "incident open sev1 API down", "U_ALICE", "A_EMU")
    assert payload["response_url"].startswith(emu.base_url) and payload["trigger_id"]
    assert response.ok and json.loads(response.body) == {"text": "On it."}
    assert [e["text"] for e in emu.ephemeral] == ["On it."]
    (delivery,) = emu.deliveries
    assert (delivery.kind, delivery.transport, delivery.envelope_id, delivery.connection) == (
        "slash_command", "socket", envelope["envelope_id"], app.hello["debug_info"]["host"])


def test_interactive_envelopes_and_a_view_submission_refused_with_errors(emu: SlackEmulator,
                                                                         apps: Callable[..., SocketApp]) -> None:
    def policy(envelope: dict[str, Any]) -> dict[str, Any]:
        if envelope["payload"]["type"] == "view_submission":
            return {"envelope_id": envelope["envelope_id"],
                    "payload": {"response_action": "errors", "errors": {"update": "Say what changed."}}}
        return {"envelope_id": envelope["envelope_id"], "payload": {"ignored": True}}

    app = apps(policy)
    ts = emu.workspace.post("C_STAKE", "U_BOT", "header", as_bot=True, blocks=[
        {"type": "actions", "block_id": "b", "elements": [
            {"type": "button", "action_id": "go", "value": "1", "text": {"type": "plain_text", "text": "Go"}}]}]).ts
    clicked = emu.click_button("U_ALICE", "C_STAKE", ts, "go")
    assert clicked.ok and clicked.body == ""  # block_actions cannot carry a response payload
    with emu.workspace.lock:
        trigger = emu.workspace.issue_trigger("U_ALICE")
    emu.web_api.handle("views.open", "", {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                       json.dumps({"trigger_id": trigger, "view": {
                           "type": "modal", "callback_id": "update", "title": {"type": "plain_text", "text": "U"},
                           "submit": {"type": "plain_text", "text": "Post"},
                           "blocks": [{"type": "input", "block_id": "update", "label": {"type": "plain_text",
                                                                                        "text": "What changed"},
                                       "element": {"type": "plain_text_input", "action_id": "text"}}]}}).encode())
    submitted = emu.submit_view("U_ALICE", "update", {"update": {"text": ""}})
    kinds = [(e["type"], e["payload"]["type"], e["accepts_response_payload"]) for e in app.envelopes]
    assert kinds == [("interactive", "block_actions", False), ("interactive", "view_submission", True)]
    assert json.loads(submitted.body)["response_action"] == "errors"
    assert [v.is_open for v in emu.views.values()] == [True]  # errors keep the modal open


def test_unacknowledged_events_are_redelivered_with_retry_fields(emu: SlackEmulator,
                                                                 apps: Callable[..., SocketApp]) -> None:
    emu.socket.ack_wait_seconds = 0.5
    emu.retry_events((0.0, 0.0))
    seen: list[int] = []

    def silent_once(envelope: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(envelope["retry_attempt"])
        return None if len(seen) == 1 else ack(envelope)

    app = apps(silent_once)
    first = emu.post_message_as_user("U_ALICE", "C_STAKE", "etcd leader changed")
    assert first is not None
    wait_until(lambda: len(app.envelopes) == 2)
    original, retry = app.envelopes
    assert (retry["type"], retry["retry_attempt"], retry["retry_reason"]) == ("events_api", 1, "timeout")
    assert (original["retry_attempt"], original["retry_reason"], original["accepts_response_payload"]) == (0, "", False)
    assert original["payload"]["event_id"] == retry["payload"]["event_id"]
    assert retry["envelope_id"] != original["envelope_id"]
    wait_until(lambda: len(emu.deliveries) == 2)
    assert [(d.retry_num, d.retry_reason, d.error) for d in emu.deliveries] == [
        (None, None, "no_ack"), (1, "timeout", None)]


def test_envelopes_spread_over_connections_each_to_exactly_one(emu: SlackEmulator,
                                                               apps: Callable[..., SocketApp]) -> None:
    one, two = apps(), apps()
    for i in range(10):
        assert emu.slash_command("U_ALICE", "C_STAKE", f"help {i}").ok
    texts = sorted(e["payload"]["text"] for e in one.envelopes + two.envelopes)
    assert texts == sorted(f"help {i}" for i in range(10))
    assert one.envelopes and two.envelopes
    assert len(emu.socket_acks) == 10 and emu.socket_unexpected == []


def test_disconnect_reasons_and_the_refresh_handover(emu: SlackEmulator, apps: Callable[..., SocketApp]) -> None:
    old = apps()
    (target,) = emu.socket_disconnect("refresh_requested", close_after=0.5)
    assert old.next_frame() == {"type": "disconnect", "reason": "refresh_requested",
                                "debug_info": {"host": target.id}}
    new = apps()  # the app opens its next connection; the old one still delivers until it closes
    assert emu.slash_command("U_ALICE", "C_STAKE", "help").ok
    assert [e["payload"]["text"] for e in new.envelopes] == ["help"] and old.envelopes == []
    assert old.closed.wait(5)  # Slack closes it after a grace period if the app does not
    with pytest.raises(ValueError):
        emu.socket_disconnect("bored")

    emu.socket_mode = False  # switched off in the app settings: every connection is told
    assert new.next_frame()["reason"] == "link_disabled"
    assert new.closed.wait(5)


def test_no_connection_means_dispatch_failed_and_junk_is_noted(emu: SlackEmulator,
                                                               apps: Callable[..., SocketApp]) -> None:
    emu.socket_mode = True
    failed = emu.slash_command("U_ALICE", "C_STAKE", "help")
    assert (failed.status, failed.error) == (0, "dispatch_failed")
    app = apps()
    app.ws.send("{not json")
    app.ws.send(json.dumps({"envelope_id": "never-sent"}))
    assert emu.slash_command("U_ALICE", "C_STAKE", "help").ok  # the connection survived the junk
    assert [m.problem for m in emu.socket_unexpected] == ["not JSON", "unknown or expired envelope_id"]


def test_a_dropped_connection_ends_without_a_close_frame(emu: SlackEmulator, apps: Callable[..., SocketApp]) -> None:
    app = apps()
    emu.socket_drop()
    assert app.closed.wait(5)
    assert app.ws.close_code in (None, 1006)
    wait_until(lambda: emu.socket_connections == [])
