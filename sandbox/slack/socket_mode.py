"""Socket Mode delivery: slash commands, interactions and events as envelopes over the app's WebSocket.

With Socket Mode on, Slack sends an app nothing over HTTP: each payload travels in an envelope on one
of the app's open connections (:mod:`sandbox.slack.socket_link`)::

    {"envelope_id": "…", "type": "slash_commands" | "interactive" | "events_api",
     "payload": {…the same payload the Request URL would get…},
     "accepts_response_payload": true | false,
     "retry_attempt": 0, "retry_reason": ""}          # events_api only

and the app acknowledges with ``{"envelope_id": "…"}`` — plus ``"payload": {…}`` where
``accepts_response_payload`` is true (a slash command's first reply, a ``view_submission``'s
``response_action``) — within three seconds. Envelopes are spread over the app's connections, each
delivered to one of them. An event that is not acknowledged in time is delivered again on Slack's
retry schedule with ``retry_attempt`` and ``retry_reason`` set; commands and interactions are not
(the person sees an error instead).

:class:`SocketModeTransport` has the same three entry points as the HTTP
:class:`~sandbox.slack.client.BotClient` (``command``, ``interaction``, ``event``) and answers with
the same :class:`~sandbox.slack.client.Response`: ``status`` 200 once acknowledged, ``body`` the
acknowledgement's payload as JSON, ``status`` 0 with ``error`` when no connection was open
(``dispatch_failed``) or no acknowledgement came (``no_ack``). So every interaction of the emulator,
and every test built on them, runs over either transport unchanged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.slack.client import ACK_DEADLINE_SECONDS, BotClient, Delivery, Response
from sandbox.slack.errors import EmulatorError
from sandbox.slack.socket_link import LinkConnection, SocketLink

log = logging.getLogger(__name__)

ACK_WAIT_SECONDS = 10.0
"""How long the emulator waits for an acknowledgement before calling the delivery failed (a late one
is still recorded, flagged slow, like a slow HTTP answer)."""
ENVELOPE_TYPES = {"slash_command": "slash_commands", "event_callback": "events_api"}
"""Envelope ``type`` by delivery kind; every interactivity payload travels as ``interactive``."""
RESPONSE_PAYLOAD_KINDS = frozenset({"slash_command", "view_submission", "block_suggestion"})
"""Deliveries whose acknowledgement may carry a payload (``accepts_response_payload: true``)."""


@dataclass
class _Pending:
    kind: str
    connection: str
    sent_at: float
    acked: threading.Event = field(default_factory=threading.Event)
    payload: Any = None
    acked_at: float | None = None
    acked_on: str | None = None


@dataclass(frozen=True)
class ClientMessage:
    """A frame from the app that was not a valid acknowledgement, and why (kept for tests)."""

    connection: str
    text: str
    problem: str


class SocketModeTransport:
    """Envelopes out, acknowledgements in, over the connections of one :class:`SocketLink`."""

    def __init__(self, link: SocketLink, deliveries: BotClient, *,
                 ack_deadline_seconds: float = ACK_DEADLINE_SECONDS) -> None:
        self.link = link
        self.ack_deadline_seconds = ack_deadline_seconds
        self.ack_wait_seconds = ACK_WAIT_SECONDS
        self.retry_delays: tuple[float, ...] | None = None
        """Event redelivery schedule; ``None`` (the default) sends each event once."""
        self._log = deliveries
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self.acks: list[dict[str, Any]] = []
        """Every valid acknowledgement received, in order (``envelope_id``, ``payload``, ``connection``)."""
        self.unexpected: list[ClientMessage] = []
        """Frames that were not acknowledgements of a pending envelope (duplicates, unknown ids, junk)."""
        link.on_message = self._receive

    # --- the transport interface (same as BotClient) -------------------------------------------
    def reachable(self) -> bool:
        """Whether an envelope sent now has a connection to go to."""
        return bool(self.link.connections())

    def command(self, form: dict[str, str], *, timestamp: int | None = None,
                bad_signature: bool = False) -> Response:
        """A slash command as a ``slash_commands`` envelope (the payload is the form as an object)."""
        _unsigned(timestamp, bad_signature)
        return self.deliver("slash_command", dict(form))

    def interaction(self, kind: str, payload: dict[str, Any], *, timestamp: int | None = None,
                    bad_signature: bool = False) -> Response:
        """An interactivity payload (``block_actions``, ``view_submission`` …) as an ``interactive`` envelope."""
        _unsigned(timestamp, bad_signature)
        return self.deliver(kind, payload)

    def event(self, envelope: dict[str, Any], *, event_id: str, retry_num: int | None = None,
              retry_reason: str | None = None) -> Response:
        """An Events API callback as an ``events_api`` envelope; redelivered on the schedule if unacknowledged."""
        response = self.deliver("event_callback", envelope, retry_attempt=retry_num or 0,
                                retry_reason=(retry_reason or "timeout") if retry_num else "", event_id=event_id)
        reason = self.failure_reason(response)
        if reason and self.retry_delays and retry_num is None:
            threading.Thread(target=self._redeliver, args=(envelope, event_id, reason), daemon=True,
                             name=f"redeliver-{event_id}").start()
        return response

    def failure_reason(self, response: Response) -> str | None:
        """Why an event must be sent again (``timeout``), ``None`` when it was acknowledged in time."""
        if response.status == 0 or response.elapsed_seconds > self.ack_deadline_seconds:
            return "timeout"
        return None

    # --- envelopes -----------------------------------------------------------------------------
    def deliver(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, retry_reason: str = "",
                event_id: str | None = None, connection: LinkConnection | None = None) -> Response:
        """Send one envelope to one connection and wait for its acknowledgement."""
        target = connection or self.link.pick()
        envelope_id = str(uuid.uuid4())
        accepts = kind in RESPONSE_PAYLOAD_KINDS
        retry = (retry_attempt or None, retry_reason or None) if kind == "event_callback" else (None, None)
        if target is None:
            return self._record(kind, Response(0, "", {}, 0.0, error="dispatch_failed"), retry, event_id,
                                envelope_id, None)
        message: dict[str, Any] = {"envelope_id": envelope_id, "payload": payload,
                                   "type": ENVELOPE_TYPES.get(kind, "interactive"),
                                   "accepts_response_payload": accepts}
        if kind == "event_callback":
            message["retry_attempt"], message["retry_reason"] = retry_attempt, retry_reason
        pending = _Pending(kind, target.id, time.monotonic())
        with self._lock:
            self._pending[envelope_id] = pending
        try:
            if not target.send_json(message):
                return self._record(kind, Response(0, "", {}, 0.0, error="dispatch_failed"), retry, event_id,
                                    envelope_id, target.id)
            pending.acked.wait(self.ack_wait_seconds)
        finally:
            with self._lock:
                self._pending.pop(envelope_id, None)
        if pending.acked_at is None:
            response = Response(0, "", {}, time.monotonic() - pending.sent_at, error="no_ack")
        else:
            body = json.dumps(pending.payload) if accepts and pending.payload is not None else ""
            response = Response(200, body, {}, pending.acked_at - pending.sent_at)
        return self._record(kind, response, retry, event_id, envelope_id, target.id)

    def send_raw(self, text: str, connection: LinkConnection | None = None) -> bool:
        """Send any text frame (malformed JSON, an unknown envelope type …) to test the app's defences."""
        target = connection or self.link.pick()
        if target is None:
            raise EmulatorError("no Socket Mode connection is open")
        return target.send_text(text)

    def _record(self, kind: str, response: Response, retry: tuple[int | None, str | None], event_id: str | None,
                envelope_id: str, connection: str | None) -> Response:
        self._log.record(Delivery(kind, response.status, response.elapsed_seconds, time.time(), retry[0], retry[1],
                                  event_id, response.error, self.ack_deadline_seconds, transport="socket",
                                  envelope_id=envelope_id, connection=connection))
        return response

    def _receive(self, connection: LinkConnection, text: str) -> None:
        """A frame from the app: an acknowledgement ``{"envelope_id", "payload"?}`` or something to note."""
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            self._unexpected(connection, text, "not JSON")
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str):
            self._unexpected(connection, text, "no envelope_id")
            return
        with self._lock:
            pending = self._pending.get(envelope_id)
            if pending is None or pending.acked_at is not None:
                problem = "duplicate acknowledgement" if pending is not None else "unknown or expired envelope_id"
            else:
                problem = None
                pending.acked_at, pending.acked_on = time.monotonic(), connection.id
                pending.payload = message.get("payload")
                self.acks.append({"envelope_id": envelope_id, "payload": pending.payload,
                                  "connection": connection.id})
                pending.acked.set()
        if problem:
            self._unexpected(connection, text, problem)

    def _unexpected(self, connection: LinkConnection, text: str, problem: str) -> None:
        log.info("Socket Mode frame from %s ignored: %s", connection.id, problem)
        with self._lock:
            self.unexpected.append(ClientMessage(connection.id, text[:2000], problem))

    def _redeliver(self, envelope: dict[str, Any], event_id: str, reason: str) -> None:
        for attempt, delay in enumerate(self.retry_delays or (), start=1):
            time.sleep(delay)
            response = self.deliver("event_callback", envelope, retry_attempt=attempt, retry_reason=reason,
                                    event_id=event_id)
            next_reason = self.failure_reason(response)
            if next_reason is None:
                return
            reason = next_reason


def _unsigned(timestamp: int | None, bad_signature: bool) -> None:
    if timestamp is not None or bad_signature:
        raise EmulatorError("Socket Mode envelopes are not signed: forged signatures and replayed timestamps "
                            "are an HTTP matter (switch Socket Mode off for that test)")
