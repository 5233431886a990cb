"""The Slack emulator: Web API server, workspace fixtures, inspection, fault injection.

One :class:`SlackEmulator` is one workspace with one installed app (bot user ``U_BOT``). The bot
under test talks to :attr:`SlackEmulator.api_url` as its ``SLACK_API_URL``; tests arrange users
and channels, act as people (:class:`~sandbox.slack.interactions.Interactions`) and read back
what the bot did (:attr:`calls`, :meth:`messages`, :attr:`ephemeral`, :attr:`files`).

Requests reach the bot the way the app is configured in Slack: signed HTTP to its Request URL, or,
with :attr:`SlackEmulator.socket_mode` on, envelopes over the WebSocket the bot opened with
``apps.connections.open`` (:mod:`sandbox.slack.socket_mode`). The same interactions work either way.
Other servers (the demo page) mount their routes on :attr:`SlackEmulator.server`; the emulator
imports nothing of them.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from types import TracebackType
from typing import Any

from sandbox.slack.client import BotClient, Delivery, Transport
from sandbox.slack.errors import UnknownObjectError
from sandbox.slack.faults import Fault, FaultInjector
from sandbox.slack.interactions import Interactions
from sandbox.slack.methods import build_registry
from sandbox.slack.methods.files import receive_upload
from sandbox.slack.model import SYSTEM_SUBTYPES, Channel, File, View
from sandbox.slack.ratelimit import RateLimiter
from sandbox.slack.responses import receive_response_url
from sandbox.slack.server import HttpRequest, SlackHttpServer
from sandbox.slack.socket_link import LinkConnection, SocketLink
from sandbox.slack.socket_mode import ClientMessage, SocketModeTransport
from sandbox.slack.state import Workspace
from sandbox.slack.webapi import ApiCall, CallLog, HttpReply, MethodRegistry, WebApi


class SlackEmulator(Interactions):
    """A local stand-in for Slack's Web API, Events API and interactivity, for tests and demos."""

    def __init__(self, signing_secret: str, bot_token: str = "xoxb-test", request_url: str | None = None, *,
                 team_id: str = "T_EMU", team_name: str = "emulated", bot_user_id: str = "U_BOT",
                 bot_id: str = "B_EMU", app_id: str = "A_EMU", verification_token: str = "emu-verification-token",
                 registry: MethodRegistry | None = None, port: int = 0, app_token: str | None = None,
                 socket_mode: bool = False) -> None:
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.request_url = request_url
        """The bot's Request URL (slash commands, interactivity and events); settable any time."""
        self.verification_token = verification_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.workspace = Workspace(team_id=team_id, team_name=team_name, bot_user_id=bot_user_id, bot_id=bot_id,
                                   app_id=app_id)
        self.rate_limiter = RateLimiter()
        self.faults = FaultInjector()
        self._calls = CallLog()
        self.app_token = app_token or f"xapp-1-{app_id}-1-emulated"
        """The app-level token (``connections:write``) that opens Socket Mode connections."""
        self.web_api = WebApi(self.workspace, registry or build_registry(), bot_token=bot_token,
                              limiter=self.rate_limiter, faults=self.faults, calls=self._calls,
                              app_token=self.app_token)
        self.client = BotClient(signing_secret, lambda: self.request_url)
        self.events_sent = []
        self.link = SocketLink(app_id)
        self.socket = SocketModeTransport(self.link, self.client)
        self._socket_mode = socket_mode
        self.workspace.socket_mode_url = self.link.issue_url
        self.server = SlackHttpServer(port=port)
        self._in_flight: Counter[str] = Counter()
        self._in_flight_lock = threading.Lock()
        self.server.route("/api/", self._api)
        self.server.route("/upload/v1/", self._upload, methods=("POST",))
        self.server.route("/hooks/", lambda r: receive_response_url(self.workspace, r), methods=("POST",))

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> SlackEmulator:
        """Serve on a free loopback port (returns ``self``)."""
        self.server.start()
        self.link.start()
        self.workspace.base_url = self.server.base_url
        return self

    def stop(self) -> None:
        """Stop serving (HTTP and the Socket Mode endpoint)."""
        self.link.stop()
        self.server.stop()

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return self.server.base_url

    @property
    def api_url(self) -> str:
        """The Web API base, ``http://127.0.0.1:PORT/api/`` (the bot's ``SLACK_API_URL``)."""
        return self.server.base_url + "api/"

    def _api(self, request: HttpRequest) -> HttpReply:
        method = request.tail("/api/")
        with self._in_flight_lock:
            self._in_flight[method] += 1
        try:
            return self.web_api.handle(method, request.query, request.headers, request.body)
        finally:
            with self._in_flight_lock:
                self._in_flight[method] -= 1

    def _upload(self, request: HttpRequest) -> HttpReply:
        return receive_upload(self.workspace, request.tail("/upload/v1/"), request.headers, request.body)

    # --- Socket Mode ----------------------------------------------------------------------------
    @property
    def socket_mode(self) -> bool:
        """Whether the app is in Socket Mode: requests go over its WebSocket, not to ``request_url``."""
        return self._socket_mode

    @socket_mode.setter
    def socket_mode(self, enabled: bool) -> None:
        was, self._socket_mode = self._socket_mode, enabled
        if was and not enabled:  # switched off in the app's settings: Slack tells every connection
            self.link.disconnect("link_disabled", close_after=1.0)

    @property
    def transport(self) -> Transport:
        """How requests reach the bot right now."""
        return self.socket if self._socket_mode else self.client

    @property
    def socket_connections(self) -> list[LinkConnection]:
        """The app's open Socket Mode connections, oldest first."""
        return self.link.connections()

    def wait_for_socket_connections(self, count: int = 1, timeout: float = 10.0, *,
                                    other_than: tuple[str, ...] = ()) -> list[LinkConnection]:
        """Block until ``count`` connections (besides ``other_than`` ids) are open."""
        return self.link.wait_for_connections(count, timeout, other_than=other_than)

    def socket_disconnect(self, reason: str = "refresh_requested", connection: LinkConnection | None = None, *,
                          close_after: float | None = 10.0) -> list[LinkConnection]:
        """Send Slack's ``disconnect`` (``warning``, ``refresh_requested``, ``link_disabled``) and close
        the connection ``close_after`` seconds later unless the app has closed it by then."""
        return self.link.disconnect(reason, connection, close_after=close_after)

    def socket_drop(self, connection: LinkConnection | None = None) -> LinkConnection:
        """Cut one connection (the oldest by default) without a close frame: a network failure."""
        target = connection or next(iter(self.link.connections()), None)
        if target is None:
            raise UnknownObjectError("no Socket Mode connection is open")
        target.drop()
        return target

    def socket_send_raw(self, text: str, connection: LinkConnection | None = None) -> bool:
        """Send any frame (bad JSON, an unknown envelope type, another app's envelope) to the bot."""
        return self.socket.send_raw(text, connection)

    @property
    def socket_acks(self) -> list[dict[str, Any]]:
        """Every acknowledgement the bot sent, in order (``envelope_id``, ``payload``, ``connection``)."""
        return list(self.socket.acks)

    @property
    def socket_unexpected(self) -> list[ClientMessage]:
        """Frames from the bot that acknowledged nothing (duplicates, unknown ids, junk)."""
        return list(self.socket.unexpected)

    # --- workspace fixtures --------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, is_bot: bool = False, real_name: str = "") -> None:
        """Add a member of the workspace."""
        self.workspace.add_user(user_id, name=name, is_bot=is_bot, real_name=real_name)

    def add_channel(self, channel_id: str | None = None, name: str = "", members: list[str] | None = None,
                    is_private: bool = False) -> str:
        """Add a channel (no system messages); returns its ID."""
        return self.workspace.add_channel(channel_id, name=name or (channel_id or "channel").lower(),
                                          creator=self.bot_user_id, members=members, is_private=is_private).id

    def add_usergroup(self, group_id: str, handle: str, users: list[str]) -> None:
        """Add a user group."""
        self.workspace.add_usergroup(group_id, handle=handle, users=users)

    def remove_member(self, channel_id: str, user_id: str) -> None:
        """Take ``user_id`` out of a channel (kick the bot → its posts fail ``not_in_channel``)."""
        ws = self.workspace
        with ws.lock:
            channel = ws.require_channel(channel_id)
            if user_id in channel.members:
                channel.members.remove(user_id)

    def archive_channel(self, channel_id: str) -> None:
        """Archive a channel (writes then fail ``is_archived``)."""
        with self.workspace.lock:
            self.workspace.require_channel(channel_id).is_archived = True

    # --- what the bot did ----------------------------------------------------------------------
    @property
    def calls(self) -> list[ApiCall]:
        """Every Web API call, in order."""
        return self._calls.snapshot()

    def calls_to(self, method: str) -> list[ApiCall]:
        """Calls to one method, in order."""
        return [c for c in self._calls.snapshot() if c.method == method]

    def in_flight(self, method: str) -> int:
        """Calls to ``method`` received but not answered yet (held by :meth:`delay`, say)."""
        with self._in_flight_lock:
            return self._in_flight[method]

    def wait_for_calls(self, method: str, count: int, timeout: float = 5.0) -> list[ApiCall]:
        """Block until ``count`` calls to ``method`` were made; ``TimeoutError`` otherwise."""
        return self._calls.wait_for(method, count, timeout)

    @property
    def channels(self) -> dict[str, Channel]:
        """Snapshot of every channel by ID."""
        with self.workspace.lock:
            return copy.deepcopy(self.workspace.channels)

    def channel_by_name(self, name: str) -> Channel | None:
        """Snapshot of the channel called ``name``, if any."""
        with self.workspace.lock:
            found = next((c for c in self.workspace.channels.values() if c.name == name.lstrip("#")), None)
            return copy.deepcopy(found)

    def messages(self, channel_id: str, *, include_replies: bool = True,
                 include_system: bool = False) -> list[dict[str, Any]]:
        """Messages of a channel, oldest first (replies included; join/topic notices excluded)."""
        return [m.record() for m in self.workspace.all_messages(channel_id)
                if (include_replies or not m.is_reply) and (include_system or m.subtype not in SYSTEM_SUBTYPES)]

    def replies(self, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
        """A thread, parent first (empty when ``thread_ts`` is unknown)."""
        return [m.record() for m in self.workspace.thread(channel_id, thread_ts)]

    def pins(self, channel_id: str) -> list[dict[str, Any]]:
        """Pinned messages of a channel, in pin order."""
        ws = self.workspace
        with ws.lock:
            channel = ws.require_channel(channel_id)
            return [m.record() for ts in channel.pins if (m := ws.message(channel_id, ts)) is not None]

    @property
    def files(self) -> list[File]:
        """Snapshot of every file from the upload flow, in ticket order."""
        with self.workspace.lock:
            return copy.deepcopy(list(self.workspace.files.values()))

    @property
    def ephemeral(self) -> list[dict[str, Any]]:
        """Ephemeral messages (``chat.postEphemeral``, ``response_url``, acknowledgement bodies)."""
        with self.workspace.lock:
            return copy.deepcopy(self.workspace.ephemeral)

    @property
    def views(self) -> dict[str, View]:
        """Snapshot of every modal the bot opened, by view ID."""
        with self.workspace.lock:
            return copy.deepcopy(self.workspace.views)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every request sent to the bot, with status and timing."""
        return self.client.deliveries

    @property
    def slow_acks(self) -> list[Delivery]:
        """Requests the bot acknowledged after Slack's three-second deadline."""
        return self.client.slow_acks

    # --- knobs and fault injection -------------------------------------------------------------
    @property
    def trigger_ttl_seconds(self) -> float:
        """How long a ``trigger_id`` stays valid (Slack: 3 s)."""
        return self.workspace.trigger_ttl_seconds

    @trigger_ttl_seconds.setter
    def trigger_ttl_seconds(self, seconds: float) -> None:
        self.workspace.trigger_ttl_seconds = seconds

    def retry_events(self, delays: tuple[float, ...] | None = (0.0, 60.0, 300.0)) -> None:
        """Re-send failed or slow event deliveries after ``delays`` like Slack (``None`` turns it off);
        over Socket Mode an envelope not acknowledged within three seconds is redelivered the same way."""
        self.client.retry_delays = delays
        self.socket.retry_delays = delays

    def set_rate_limit(self, method: str, per_minute: int | None) -> None:
        """Lower (or restore with ``None``) a method's tier allowance per minute."""
        self.rate_limiter.set_limit(method, per_minute)

    def fail_next(self, method: str, error: str = "name_taken", times: int = 1) -> None:
        """The next ``times`` calls to ``method`` answer ``ok: false`` with ``error``."""
        self.faults.add(method, Fault("error", code=error), times)

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls to ``method`` answer HTTP 429 with ``Retry-After``."""
        self.faults.add(method, Fault("ratelimited", retry_after=retry_after), times)

    def server_error(self, method: str, times: int = 1, status: int = 500, *, processed: bool = False) -> None:
        """The next ``times`` calls to ``method`` answer HTTP ``status``; with ``processed`` the call
        still takes effect first (Slack posted the message, but the answer was lost)."""
        self.faults.add(method, Fault("server_error_after" if processed else "server_error", status=status), times)

    def delay(self, method: str, seconds: float) -> None:
        """Every call to ``method`` takes ``seconds`` longer (0 clears).

        The pause comes before the call takes effect, and the call takes effect even if the client
        has given up or died meanwhile: the ambiguous "sent, answer never read" case."""
        self.faults.set_delay(method, seconds)

    def message(self, channel_id: str, ts: str) -> dict[str, Any]:
        """One message by ``ts`` (``UnknownObjectError`` when absent)."""
        found = self.workspace.message(channel_id, ts)
        if found is None:
            raise UnknownObjectError(f"no message {ts!r} in {channel_id!r}")
        return found.record()
