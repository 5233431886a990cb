"""Socket Mode's wire: ``apps.connections.open`` tickets and the ``ws://`` endpoint they open.

Slack hands an app a one-time WebSocket URL (``wss://…/link/?ticket=…&app_id=…``) from
``apps.connections.open`` called with the app-level token; the app connects, Slack greets it with
``hello`` (``num_connections``, ``debug_info``, ``connection_info.app_id``), and from then on the
connection carries envelopes one way and acknowledgements the other. An app may hold several
connections at once; Slack tells one to go with ``disconnect`` (``warning`` ahead of a refresh,
``refresh_requested``, or ``link_disabled`` when Socket Mode is switched off) and closes it shortly
after if the app does not.

:class:`SocketLink` is that endpoint on loopback, served by the ``websockets`` library (RFC 6455
framing, ping/pong and the close handshake are the library's, not hand-rolled). It knows nothing of
envelopes: every text frame from the app goes to ``on_message``; :mod:`sandbox.slack.socket_mode`
builds envelopes and matches acknowledgements.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

log = logging.getLogger(__name__)

TICKET_TTL_SECONDS = 30.0
"""How long a URL from ``apps.connections.open`` may wait before it is used (once)."""
CLOSE_AFTER_DISCONNECT_SECONDS = 10.0
"""Slack's ``warning`` comes about ten seconds before it closes the connection itself."""
APPROXIMATE_CONNECTION_SECONDS = 3600
"""``debug_info.approximate_connection_time``: how long Slack expects to keep a connection."""
DISCONNECT_REASONS = ("warning", "refresh_requested", "link_disabled")

MessageHandler = Callable[["LinkConnection", str], None]


@dataclass
class LinkConnection:
    """One open WebSocket of the app, as Slack would see it."""

    id: str
    """``debug_info.host`` in its ``hello``; names the connection in deliveries."""
    opened_at: float
    _ws: ServerConnection = field(repr=False)
    _send_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    draining: bool = False
    """A ``disconnect`` was sent: no new envelopes go here while another connection is open."""
    closed: threading.Event = field(default_factory=threading.Event, repr=False)
    received: list[str] = field(default_factory=list, repr=False)
    """Every text frame the app sent on this connection, in order."""

    @property
    def is_open(self) -> bool:
        """Whether the connection still carries frames."""
        return not self.closed.is_set()

    def send_text(self, text: str) -> bool:
        """Send one text frame; ``False`` when the connection is gone."""
        try:
            with self._send_lock:
                self._ws.send(text)
            return True
        except (ConnectionClosed, OSError):
            return False

    def send_json(self, message: dict[str, Any]) -> bool:
        """Send one JSON message; ``False`` when the connection is gone."""
        return self.send_text(json.dumps(message))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with the WebSocket close handshake."""
        try:
            self._ws.close(code, reason)
        except (ConnectionClosed, OSError):
            pass

    def drop(self) -> None:
        """Cut the TCP connection without a close frame (a network failure, not a goodbye)."""
        try:
            self._ws.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@dataclass
class _Ticket:
    issued_at: float
    used: bool = False


class SocketLink:
    """Tickets, the WebSocket server and the app's open connections."""

    def __init__(self, app_id: str, *, host: str = "127.0.0.1", on_message: MessageHandler | None = None) -> None:
        self.app_id = app_id
        self.host = host
        self.on_message: MessageHandler = on_message or (lambda connection, text: None)
        self.ticket_ttl_seconds = TICKET_TTL_SECONDS
        self._tickets: dict[str, _Ticket] = {}
        self._connections: list[LinkConnection] = []
        self._ids = itertools.count(1)
        self._next = itertools.count()
        self._changed = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.refused: list[str] = []
        """Why each refused WebSocket handshake was refused (bad or reused ticket, wrong path)."""

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Serve on a free loopback port in a daemon thread."""
        if self._server is not None:
            return
        self._server = serve(self._serve, self.host, 0, process_request=self._check_ticket,
                             ping_interval=20, ping_timeout=20, close_timeout=2, compression=None)
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-socket-link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close every connection and stop serving."""
        for connection in self.connections():
            connection.close(1001, "server stopping")
        if self._server is not None:
            self._server.shutdown()
            if self._thread is not None:
                self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def port(self) -> int:
        """The endpoint's port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the Socket Mode endpoint is not running; start the emulator first")
        return int(self._server.socket.getsockname()[1])

    # --- tickets (apps.connections.open) -------------------------------------------------------
    def issue_url(self) -> str:
        """A fresh one-time ``ws://`` URL, as ``apps.connections.open`` returns."""
        ticket = secrets.token_hex(16)
        with self._changed:
            self._tickets[ticket] = _Ticket(time.monotonic())
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def _check_ticket(self, ws: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._changed:
            ticket = self._tickets.get(query.get("ticket", ""))
            problem = None
            if parts.path.rstrip("/") != "/link":
                problem = "not_found"
            elif ticket is None:
                problem = "invalid_ticket"
            elif ticket.used:
                problem = "ticket_already_used"
            elif time.monotonic() - ticket.issued_at > self.ticket_ttl_seconds:
                problem = "ticket_expired"
            elif query.get("app_id") != self.app_id:
                problem = "app_mismatch"
            if problem is None and ticket is not None:
                ticket.used = True
                return None
            self.refused.append(str(problem))
        status = HTTPStatus.NOT_FOUND if problem == "not_found" else HTTPStatus.UNAUTHORIZED
        return ws.respond(status, f"{problem}\n")

    # --- connections ---------------------------------------------------------------------------
    def _serve(self, ws: ServerConnection) -> None:
        connection = LinkConnection(f"applink-emu-{next(self._ids)}", time.time(), ws)
        with self._changed:
            self._connections.append(connection)
            count = len([c for c in self._connections if c.is_open])
            self._changed.notify_all()
        connection.send_json({
            "type": "hello", "num_connections": count,
            "debug_info": {"host": connection.id, "build_number": 1,
                           "approximate_connection_time": APPROXIMATE_CONNECTION_SECONDS},
            "connection_info": {"app_id": self.app_id},
        })
        try:
            for frame in ws:
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                connection.received.append(text)
                try:
                    self.on_message(connection, text)
                except Exception:  # noqa: BLE001 - a bug in the emulator must not cut the app's connection
                    log.exception("Socket Mode message handler failed on %s", connection.id)
        except ConnectionClosed:
            pass
        finally:
            connection.closed.set()
            with self._changed:
                self._connections.remove(connection)
                self._changed.notify_all()

    def connections(self) -> list[LinkConnection]:
        """The open connections, oldest first."""
        with self._changed:
            return [c for c in self._connections if c.is_open]

    def pick(self) -> LinkConnection | None:
        """The connection the next envelope goes to: round-robin over those not being refreshed
        (a draining one only when nothing else is open), so each envelope goes to exactly one."""
        with self._changed:
            open_ = [c for c in self._connections if c.is_open]
            preferred = [c for c in open_ if not c.draining] or open_
            if not preferred:
                return None
            return preferred[next(self._next) % len(preferred)]

    def wait_for_connections(self, count: int, timeout: float = 10.0, *,
                             other_than: tuple[str, ...] = ()) -> list[LinkConnection]:
        """Block until ``count`` connections are open (not counting ``other_than``); ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self._connections if c.is_open and c.id not in other_than]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(found)} Socket Mode connection(s) open after {timeout} s, "
                                       f"expected {count}")
                self._changed.wait(min(remaining, 0.1))

    def wait_until_closed(self, connection: LinkConnection, timeout: float = 10.0) -> None:
        """Block until ``connection`` is closed; ``TimeoutError`` otherwise."""
        if not connection.closed.wait(timeout):
            raise TimeoutError(f"{connection.id} still open after {timeout} s")

    def disconnect(self, reason: str, connection: LinkConnection | None = None, *,
                   close_after: float | None = CLOSE_AFTER_DISCONNECT_SECONDS) -> list[LinkConnection]:
        """Send ``{"type": "disconnect", "reason": …}`` to one connection (all for ``link_disabled``)
        and close it ``close_after`` seconds later unless the app closed it first (``None``: never)."""
        if reason not in DISCONNECT_REASONS:
            raise ValueError(f"Slack's disconnect reasons are {DISCONNECT_REASONS}, not {reason!r}")
        targets = [connection] if connection is not None else self.connections()
        if reason != "link_disabled":
            targets = targets[:1]
        for target in targets:
            target.draining = True
            target.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": target.id}})
            if close_after is not None:
                threading.Thread(target=self._close_later, args=(target, close_after), daemon=True,
                                 name=f"close-{target.id}").start()
        return targets

    @staticmethod
    def _close_later(connection: LinkConnection, seconds: float) -> None:
        if not connection.closed.wait(seconds):
            connection.close(1000, "disconnect")
