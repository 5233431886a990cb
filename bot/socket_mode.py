"""Socket Mode: Bolt fed from the WebSocket that slack_sdk's client keeps open to Slack.

:class:`SocketModeLink` wraps the SDK's built-in client for what Slack's contract asks and the SDK
leaves open: every envelope is acknowledged, also one that is dropped (another app's, an unknown
type, a payload Bolt cannot read — logged, never handled, so Slack does not redeliver it and nothing
changes); ``link_disabled`` (Socket Mode switched off for the app) ends reconnecting; and the link
knows whether it is connected, and since when, for the probes of :mod:`bot.server`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.payload_check import malformed_reason

log = logging.getLogger(__name__)

ENVELOPE_TYPES = frozenset({"slash_commands", "interactive", "events_api"})
PING_INTERVAL_SECONDS = 3.0
"""slack_sdk's client notices a connection lost without a close only by its pings (4 unanswered, or 5
failed sends): every 3 s that is a reconnect within about 15 s (Bolt's default of 10 s: about a minute)."""


@dataclass(frozen=True)
class LinkState:
    """What the probes say about the Socket Mode connection."""

    connected: bool
    seconds: float
    """How long it has been connected, or without a connection."""
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"connected": self.connected, "seconds": round(self.seconds, 1), "detail": self.detail}


class _Client(SocketModeClient):
    """The SDK's Socket Mode client, with frames screened before its queue.

    The SDK reconnects on every ``disconnect``; Slack's ``link_disabled`` means Socket Mode was
    switched off for the app, and reconnecting is what Slack asks apps not to do. Frames that are not
    JSON objects, and envelopes whose payload is not an object, would make the SDK log a traceback
    and leave the envelope unacknowledged (so Slack redelivers it); they are logged and dropped here,
    the envelope acknowledged.
    """

    link_disabled = False

    def enqueue_message(self, message: str) -> None:
        try:
            parsed = json.loads(message)
        except ValueError:
            log.warning("dropped a Socket Mode frame that is not JSON: %.200s", message)
            return
        if not isinstance(parsed, dict):
            log.warning("dropped a Socket Mode frame that is not an object: %.200s", message)
            return
        if parsed.get("type") == "disconnect" and parsed.get("reason") == "link_disabled":
            self.link_disabled = True
            self.auto_reconnect_enabled = False
            log.error("Slack switched Socket Mode off for this app (link_disabled); not reconnecting")
            threading.Thread(target=self.disconnect, name="link-disabled", daemon=True).start()
            return
        envelope_id = parsed.get("envelope_id")
        if envelope_id is not None and not isinstance(parsed.get("payload"), dict):
            log.warning("dropped Socket Mode envelope %s: its payload is not an object", envelope_id)
            self.message_workers.submit(self._ack_quietly, envelope_id)
            return
        super().enqueue_message(message)

    def _ack_quietly(self, envelope_id: object) -> None:
        try:
            self.send_socket_mode_response({"envelope_id": envelope_id})
        except Exception:  # noqa: BLE001 - the connection went; Slack redelivers
            log.warning("could not acknowledge Socket Mode envelope %s", envelope_id, exc_info=True)


class SocketModeLink:
    """Bolt fed from Slack's Socket Mode WebSocket, with the state the probes report.

    Envelopes are checked before Bolt sees them (:meth:`envelope_problem`) and every one is
    acknowledged, so a bad one is dropped once instead of being redelivered.
    """

    def __init__(self, app: App, app_token: str) -> None:
        self.app = app
        self.client = _Client(app_token=app_token, logger=logging.getLogger("bot.socket_mode"),
                              web_client=app.client, ping_interval=PING_INTERVAL_SECONDS)
        self.client.socket_mode_request_listeners.append(self._handle)  # type: ignore[arg-type]
        self.client.message_listeners.append(self._on_message)  # type: ignore[arg-type]
        self.client.on_close_listeners.append(self._on_close)
        self.app_id: str | None = None
        """From ``hello``'s ``connection_info``: envelopes for any other app are dropped."""
        self._lock = threading.Lock()
        self._greeted: str | None = None
        """The session that got the last ``hello``: connected means that session is the live one."""
        self._connected_since = 0.0
        self._lost_since: float | None = time.monotonic()

    def connect(self) -> None:
        """Open the first connection (``apps.connections.open`` with the app-level token)."""
        self.client.connect()

    def close(self) -> None:
        """Stop reconnecting, close the connection, wait for envelopes being handled."""
        self.client.close()

    def state(self) -> LinkState:
        """Connected (a live connection that has had its ``hello``) or not, and for how long.

        A connection can vanish without a close frame; then the first look that finds it gone starts
        the clock (the probes look every few seconds).
        """
        now = time.monotonic()
        with self._lock:
            session, greeted = self.client.session_id(), self._greeted
            connected = self.client.is_connected() and greeted is not None and greeted == session
            if not connected and self._lost_since is None:
                self._lost_since = now
            since = self._connected_since if connected else (self._lost_since or now)
        if connected:
            detail = f"connected (session {session})"
        elif self.client.link_disabled:
            detail = "link_disabled: Socket Mode is switched off for this app in Slack"
        else:
            detail = "connecting" if greeted is None else "reconnecting"
        return LinkState(connected, now - since, detail)

    def require_connected(self) -> None:
        """Raise unless connected (the ``slack`` check of ``/readyz``)."""
        state = self.state()
        if not state.connected:
            raise ConnectionError(f"Socket Mode not connected: {state.detail}")

    def _on_message(self, client: SocketModeClient, message: dict[str, Any], raw: str | None) -> None:
        if message.get("type") != "hello":
            return
        app_id = (message.get("connection_info") or {}).get("app_id")
        with self._lock:
            if app_id:
                self.app_id = str(app_id)
            self._greeted = client.session_id()
            self._connected_since, self._lost_since = time.monotonic(), None
        log.info("Socket Mode connected (%s connection(s) open for the app)", message.get("num_connections"))

    def _on_close(self, code: int, reason: str | None = None) -> None:
        with self._lock:
            if self._lost_since is None:
                self._lost_since = time.monotonic()

    def envelope_problem(self, req: SocketModeRequest) -> str | None:
        """Why an envelope must be dropped unhandled, ``None`` when Bolt may have it."""
        if req.type not in ENVELOPE_TYPES:
            return f"unknown envelope type {req.type!r}"
        app_id = req.payload.get("api_app_id")
        if self.app_id and app_id and app_id != self.app_id:
            return f"envelope for app {app_id}, this is {self.app_id}"
        if req.type == "interactive":
            return malformed_reason(req.payload)
        if req.type == "events_api" and not isinstance(req.payload.get("event"), dict):
            return "events_api envelope without an event object"
        return None

    def _handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        started = time.time()
        problem = self.envelope_problem(req)
        if problem is not None:
            log.warning("dropped Socket Mode envelope %s: %s", req.envelope_id, problem)
            _ack(client, req)
            return
        try:
            response = run_bolt_app(self.app, req)
        except Exception:  # noqa: BLE001 - nothing ran; acknowledged so it is not redelivered
            log.warning("dropped Socket Mode envelope %s that Bolt could not process", req.envelope_id, exc_info=True)
            _ack(client, req)
            return
        if response.status == 200:
            send_response(client, req, response, started)
        else:
            log.info("Socket Mode envelope %s got no listener (Bolt status %s)", req.envelope_id, response.status)
            _ack(client, req)


def _ack(client: SocketModeClient, req: SocketModeRequest) -> None:
    try:
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
    except Exception:  # noqa: BLE001 - the connection went; Slack redelivers what it did not hear about
        log.warning("could not acknowledge Socket Mode envelope %s", req.envelope_id, exc_info=True)
