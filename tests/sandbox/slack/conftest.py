"""Fixtures for the Slack emulator's own tests: a running emulator, a Web API client, a stub bot."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient

from sandbox.slack import SlackEmulator

SECRET = "emulator-test-secret"
TOKEN = "xoxb-emulator-test"


@dataclass
class Received:
    """One request the stub bot received."""

    path: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}

    def payload(self) -> dict[str, Any]:
        """The interactivity ``payload`` field or the JSON body."""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return dict(json.loads(self.body))
        return dict(json.loads(self.form()["payload"]))


@dataclass
class Reply:
    status: int = 200
    body: str = ""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class StubBot:
    """A loopback HTTP server standing in for the bot: records requests, answers with ``responder``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.responder: Callable[[Received], Reply] = lambda r: Reply()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Received(self.path, dict(self.headers.items()), body)
                stub.received.append(request)
                reply = stub.responder(request)
                time.sleep(reply.delay)
                payload = reply.body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"stub bot got {len(self.received)} requests, expected {count}")
            time.sleep(0.02)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def emu() -> Iterator[SlackEmulator]:
    """A running emulator with three people and a stakeholder channel the bot is in."""
    emulator = SlackEmulator(signing_secret=SECRET, bot_token=TOKEN)
    for user_id, name in {"U_ALICE": "alice", "U_BOB": "bob", "U_CAROL": "carol"}.items():
        emulator.add_user(user_id, name=name)
    emulator.add_channel("C_STAKE", name="stakeholders", members=["U_BOT", "U_ALICE"])
    emulator.add_usergroup("S_RESP", handle="responders", users=["U_BOB", "U_CAROL"])
    with emulator:
        yield emulator


@pytest.fixture()
def web(emu: SlackEmulator) -> WebClient:
    """slack_sdk's client pointed at the emulator, with no automatic retries."""
    return WebClient(token=TOKEN, base_url=emu.api_url, retry_handlers=[])


@pytest.fixture()
def bot(emu: SlackEmulator) -> Iterator[StubBot]:
    """A stub bot wired as the emulator's Request URL."""
    stub = StubBot()
    emu.request_url = stub.url
    try:
        yield stub
    finally:
        stub.close()
