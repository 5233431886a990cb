"""Slack's side of the conversation: signed requests from the emulator to the bot's Request URL.

Every slash command, interaction and event is signed (see :mod:`sandbox.slack.signing`), timed,
and recorded as a :class:`Delivery`. Slack gives the app three seconds to acknowledge; slower
answers are flagged in ``slow_acks`` (Slack would show the user an error, and retry events).
The emulator waits for the whole answer (up to ``timeout``) so tests can read it either way.

Event retries follow Slack's schedule when enabled: after a failed delivery (no connection,
non-2xx without ``X-Slack-No-Retry: 1``, or slower than three seconds) the same envelope is
sent again with ``X-Slack-Retry-Num`` 1, 2, 3 and ``X-Slack-Retry-Reason`` after each delay in
``retry_delays`` (Slack: immediately, one minute, five minutes).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from sandbox.slack.errors import NotDeliverableError
from sandbox.slack.signing import RETRY_NUM_HEADER, RETRY_REASON_HEADER, signed_headers

ACK_DEADLINE_SECONDS = 3.0
SLACK_RETRY_DELAYS: tuple[float, ...] = (0.0, 60.0, 300.0)
"""When Slack re-sends a failed event: nearly immediately, after one minute, after five."""


@dataclass(frozen=True)
class Response:
    """The bot's answer to one request (``status`` 0 when it could not be reached)."""

    status: int
    body: str
    headers: dict[str, str]
    elapsed_seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the bot answered 2xx."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body.strip() else None

    def header(self, name: str) -> str | None:
        """A response header, case-insensitively."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class Delivery:
    """One request sent to the bot and how it went."""

    kind: str
    status: int
    elapsed_seconds: float
    at: float
    retry_num: int | None = None
    retry_reason: str | None = None
    event_id: str | None = None
    error: str | None = None
    deadline_seconds: float = ACK_DEADLINE_SECONDS
    transport: str = "http"
    """``http`` (a signed request to the Request URL) or ``socket`` (an envelope over Socket Mode)."""
    envelope_id: str | None = None
    connection: str | None = None
    """The Socket Mode connection the envelope went to (its ``debug_info.host``)."""

    @property
    def slow(self) -> bool:
        """Whether the bot missed Slack's acknowledgement deadline."""
        return self.elapsed_seconds > self.deadline_seconds


class Transport(Protocol):
    """How Slack's requests reach the bot: HTTP to the Request URL, or envelopes over Socket Mode."""

    ack_deadline_seconds: float

    def reachable(self) -> bool: ...

    def command(self, form: dict[str, str], *, timestamp: int | None = None,
                bad_signature: bool = False) -> Response: ...

    def interaction(self, kind: str, payload: dict[str, Any], *, timestamp: int | None = None,
                    bad_signature: bool = False) -> Response: ...

    def event(self, envelope: dict[str, Any], *, event_id: str, retry_num: int | None = None,
              retry_reason: str | None = None) -> Response: ...


@dataclass
class BotClient:
    """Sends signed requests to ``request_url()`` and keeps the delivery log."""

    signing_secret: str
    request_url: Callable[[], str | None]
    timeout: float = 30.0
    ack_deadline_seconds: float = ACK_DEADLINE_SECONDS
    retry_delays: tuple[float, ...] | None = None
    """Event retry schedule; ``None`` (the default) sends each event once."""
    _deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every request sent so far, in order."""
        with self._lock:
            return list(self._deliveries)

    @property
    def slow_acks(self) -> list[Delivery]:
        """Deliveries the bot acknowledged later than Slack allows."""
        return [d for d in self.deliveries if d.slow]

    def record(self, delivery: Delivery) -> None:
        """Add a delivery made by another transport (Socket Mode) to the same log."""
        with self._lock:
            self._deliveries.append(delivery)

    # --- the transport interface (shared with the Socket Mode transport) -----------------------
    def reachable(self) -> bool:
        """Whether a Request URL is set."""
        return bool(self.request_url())

    def command(self, form: dict[str, str], *, timestamp: int | None = None,
                bad_signature: bool = False) -> Response:
        """POST a slash command form."""
        return self.send("slash_command", urlencode(form).encode(), "application/x-www-form-urlencoded",
                         timestamp=timestamp, bad_signature=bad_signature)

    def interaction(self, kind: str, payload: dict[str, Any], *, timestamp: int | None = None,
                    bad_signature: bool = False) -> Response:
        """POST an interactivity payload as ``payload=<json>``."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.send(kind, body, "application/x-www-form-urlencoded", timestamp=timestamp,
                         bad_signature=bad_signature)

    def event(self, envelope: dict[str, Any], *, event_id: str, retry_num: int | None = None,
              retry_reason: str | None = None) -> Response:
        """POST an Events API callback (and schedule Slack's retries if enabled)."""
        return self.send_event(json.dumps(envelope).encode(), event_id=event_id, retry_num=retry_num,
                               retry_reason=retry_reason)

    def send(self, kind: str, body: bytes, content_type: str, *, timestamp: int | None = None,
             bad_signature: bool = False, retry_num: int | None = None, retry_reason: str | None = None,
             event_id: str | None = None) -> Response:
        """POST ``body`` to the bot, signed like Slack, and record the delivery."""
        url = self.request_url()
        if not url:
            raise NotDeliverableError("request_url is not set: point it at the bot's Slack endpoint first")
        headers = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
                   **signed_headers(self.signing_secret, body, timestamp=timestamp, bad_signature=bad_signature)}
        if retry_num is not None:
            retry_reason = retry_reason or "http_timeout"
            headers[RETRY_NUM_HEADER] = str(retry_num)
            headers[RETRY_REASON_HEADER] = retry_reason
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310 - loopback bot
                response = Response(reply.status, reply.read().decode("utf-8", "replace"), dict(reply.headers.items()),
                                    time.monotonic() - started)
        except urllib.error.HTTPError as error:
            response = Response(error.code, error.read().decode("utf-8", "replace"), dict(error.headers.items()),
                                time.monotonic() - started)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = "http_timeout" if "timed out" in str(error) else "connection_failed"
            response = Response(0, "", {}, time.monotonic() - started, error=reason)
        with self._lock:
            self._deliveries.append(Delivery(kind, response.status, response.elapsed_seconds, time.time(), retry_num,
                                             retry_reason if retry_num is not None else None, event_id, response.error,
                                             self.ack_deadline_seconds))
        return response

    def send_event(self, body: bytes, *, event_id: str, retry_num: int | None = None,
                   retry_reason: str | None = None) -> Response:
        """Deliver an Events API envelope; schedule Slack's retries if enabled and it failed."""
        response = self.send("event_callback", body, "application/json", retry_num=retry_num,
                             retry_reason=retry_reason, event_id=event_id)
        reason = self.failure_reason(response)
        if reason and self.retry_delays and retry_num is None:
            threading.Thread(target=self._retry, args=(body, event_id, reason), name=f"retry-{event_id}",
                             daemon=True).start()
        return response

    def failure_reason(self, response: Response) -> str | None:
        """Slack's ``X-Slack-Retry-Reason`` for a failed delivery, ``None`` if it succeeded."""
        if response.status == 0:
            return response.error or "connection_failed"
        if response.elapsed_seconds > self.ack_deadline_seconds:
            return "http_timeout"
        if not response.ok:
            return None if response.header("X-Slack-No-Retry") == "1" else "http_error"
        return None

    def _retry(self, body: bytes, event_id: str, reason: str) -> None:
        for attempt, delay in enumerate(self.retry_delays or (), start=1):
            time.sleep(delay)
            response = self.send("event_callback", body, "application/json", retry_num=attempt, retry_reason=reason,
                                 event_id=event_id)
            next_reason = self.failure_reason(response)
            if next_reason is None:
                return
            reason = next_reason
