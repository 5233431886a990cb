"""The emulated workspace: users, channels, histories, files, views, triggers and response URLs.

One :class:`Workspace` per emulator. Every mutation and read goes through it under one
re-entrant lock (``workspace.lock``), so Web API handlers running on the HTTP server's threads
and test code reading from the main thread always see consistent state. Domain rules that are
Slack's contract (who may post where, error codes) live in the method handlers; this module
keeps the bookkeeping Slack does itself (thread counters, join messages, unique ``ts``).
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.slack.errors import ApiError, UnknownObjectError
from sandbox.slack.model import Channel, File, Message, TsClock, User, Usergroup, View, ts_key

TRIGGER_TTL_SECONDS = 3.0
"""Slack's validity of a ``trigger_id``: three seconds, single use."""

RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL_SECONDS = 30 * 60
"""A ``response_url`` answers up to five times within thirty minutes."""


@dataclass
class Trigger:
    """An issued ``trigger_id`` and who may exchange it."""

    user: str
    issued_at: float
    exchanged: bool = False


@dataclass
class ResponseTarget:
    """Where posts to one ``response_url`` land: the invoking user's view of a channel."""

    kind: str
    channel: str
    user: str
    message_ts: str | None
    original_is_ephemeral: bool
    issued_at: float
    uses: list[float] = field(default_factory=list)


class Workspace:
    """All state of one emulated workspace (team), guarded by :attr:`lock`."""

    def __init__(self, *, team_id: str, team_name: str, bot_user_id: str, bot_id: str, app_id: str) -> None:
        self.lock = threading.RLock()
        self.team_id = team_id
        self.team_name = team_name
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.base_url = ""
        """``http://127.0.0.1:PORT/`` once the server runs; prefix of every URL Slack hands out."""
        self.socket_mode_url: Callable[[], str] | None = None
        """Issues a one-time Socket Mode URL (``apps.connections.open``); set by the emulator."""
        self.trigger_ttl_seconds = TRIGGER_TTL_SECONDS
        self.clock = TsClock()
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.usergroups: dict[str, Usergroup] = {}
        self.files: dict[str, File] = {}
        self.views: dict[str, View] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self._messages: dict[str, dict[str, Message]] = {}
        self._triggers: dict[str, Trigger] = {}
        self._response_targets: dict[str, ResponseTarget] = {}
        self._ids = itertools.count(1)
        self.add_user(bot_user_id, name="incident-bot", is_bot=True)

    # --- identifiers ---------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        """A fresh Slack-looking ID (``C0EMU00001``) with the given type prefix."""
        return f"{prefix}0EMU{next(self._ids):05d}"

    # --- people and groups -----------------------------------------------------------------------
    def add_user(self, user_id: str, *, name: str, is_bot: bool = False, real_name: str = "") -> User:
        """Create (or replace) a member."""
        with self.lock:
            user = User(user_id, name, self.team_id, is_bot=is_bot, real_name=real_name)
            self.users[user_id] = user
            return user

    def require_user(self, user_id: str) -> User:
        """The member ``user_id``, or :class:`UnknownObjectError` for the caller's typo."""
        with self.lock:
            user = self.users.get(user_id)
        if user is None:
            raise UnknownObjectError(f"no user {user_id!r} in the workspace; add it with add_user() first")
        return user

    def add_usergroup(self, group_id: str, *, handle: str, users: list[str]) -> Usergroup:
        """Create (or replace) a user group."""
        with self.lock:
            group = Usergroup(group_id, handle, list(users))
            self.usergroups[group_id] = group
            return group

    # --- channels --------------------------------------------------------------------------------
    def add_channel(self, channel_id: str | None, *, name: str, creator: str, members: list[str] | None = None,
                    is_private: bool = False, system_messages: bool = False) -> Channel:
        """Create a channel; ``system_messages`` writes the creator's ``channel_join`` like Slack."""
        with self.lock:
            channel = Channel(channel_id or self.new_id("C"), name, creator, int(time.time()), is_private=is_private)
            self.channels[channel.id] = channel
            self._messages[channel.id] = {}
            for member in members or []:
                self.join(channel, member, system_message=system_messages)
            return channel

    def channel(self, channel_id: str) -> Channel | None:
        """The channel with this ID, if any."""
        with self.lock:
            return self.channels.get(channel_id)

    def resolve_channel(self, ref: str) -> Channel | None:
        """A channel by ID, ``name`` or ``#name`` (Slack accepts names for public channels)."""
        with self.lock:
            if ref in self.channels:
                return self.channels[ref]
            wanted = ref.removeprefix("#")
            return next((c for c in self.channels.values() if c.name == wanted), None)

    def require_channel(self, channel_id: str) -> Channel:
        """The channel ``channel_id``, or :class:`UnknownObjectError` for the caller's typo."""
        channel = self.channel(channel_id)
        if channel is None:
            raise UnknownObjectError(f"no channel {channel_id!r}; add it with add_channel() first")
        return channel

    def join(self, channel: Channel, user_id: str, *, inviter: str | None = None, system_message: bool = True) -> None:
        """Make ``user_id`` a member, writing Slack's ``channel_join`` message."""
        with self.lock:
            if user_id in channel.members:
                return
            channel.members.append(user_id)
            if system_message:
                extra: dict[str, Any] = {"inviter": inviter} if inviter else {}
                self.post(channel.id, user_id, f"<@{user_id}> has joined the channel", subtype="channel_join",
                          extra=extra)

    # --- messages --------------------------------------------------------------------------------
    def post(self, channel_id: str, user_id: str, text: str, *, blocks: list[dict[str, Any]] | None = None,
             thread_ts: str | None = None, subtype: str | None = None, as_bot: bool = False,
             extra: dict[str, Any] | None = None, files: list[dict[str, Any]] | None = None,
             reply_broadcast: bool = False) -> Message:
        """Store a new message and keep the thread parent's counters, as Slack does."""
        with self.lock:
            history = self._messages[channel_id]
            parent = history.get(thread_ts) if thread_ts else None
            if parent is not None and parent.is_reply:
                parent = history.get(parent.thread_ts or "")
            message = Message(channel_id, self.clock.next(), user_id, text, self.team_id, blocks=blocks,
                              subtype=subtype, extra=dict(extra or {}), files=list(files or []),
                              reply_broadcast=reply_broadcast and parent is not None)
            if as_bot:
                message.bot_id, message.app_id = self.bot_id, self.app_id
            if parent is not None:
                parent.thread_ts = parent.ts
                message.thread_ts = parent.ts
                message.parent_user = parent.user
                parent.reply_ts.append(message.ts)
                if user_id not in parent.reply_users:
                    parent.reply_users.append(user_id)
                if message.reply_broadcast:
                    message.subtype = "thread_broadcast"
            history[message.ts] = message
            return message

    def message(self, channel_id: str, ts: str) -> Message | None:
        """The message ``ts`` in ``channel_id``, if it exists."""
        with self.lock:
            return self._messages.get(channel_id, {}).get(ts)

    def require_message(self, channel_id: str, ts: str) -> Message:
        """The message, or :class:`UnknownObjectError` for the caller's typo."""
        message = self.message(channel_id, ts)
        if message is None:
            raise UnknownObjectError(f"no message {ts!r} in channel {channel_id!r}")
        return message

    def delete(self, channel_id: str, ts: str) -> Message:
        """Remove a message (a deleted parent's replies stay, as in Slack)."""
        with self.lock:
            message = self._messages[channel_id].pop(ts)
            if message.is_reply:
                parent = self._messages[channel_id].get(message.thread_ts or "")
                if parent is not None and ts in parent.reply_ts:
                    parent.reply_ts.remove(ts)
            return message

    def all_messages(self, channel_id: str) -> list[Message]:
        """Every message of the channel, replies included, oldest first."""
        with self.lock:
            return sorted(self._messages.get(channel_id, {}).values(), key=lambda m: ts_key(m.ts))

    def history(self, channel_id: str) -> list[Message]:
        """What ``conversations.history`` lists: top-level messages and broadcasts, oldest first."""
        return [m for m in self.all_messages(channel_id) if not m.is_reply or m.reply_broadcast]

    def thread(self, channel_id: str, ts: str) -> list[Message]:
        """A thread: parent first, then replies oldest first (just the message if it has none)."""
        with self.lock:
            history = self._messages.get(channel_id, {})
            root = history.get(ts)
            if root is None:
                return []
            if root.is_reply:
                root = history.get(root.thread_ts or "", root)
            replies = [history[r] for r in root.reply_ts if r in history]
            return [root, *sorted(replies, key=lambda m: ts_key(m.ts))]

    # --- triggers --------------------------------------------------------------------------------
    def issue_trigger(self, user_id: str) -> str:
        """A fresh ``trigger_id`` for an interaction by ``user_id``."""
        with self.lock:
            trigger_id = f"{int(time.time())}.{next(self._ids)}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = Trigger(user_id, time.monotonic())
            return trigger_id

    def exchange_trigger(self, trigger_id: str) -> str:
        """Spend a ``trigger_id`` (once, within its TTL); the user it belongs to."""
        with self.lock:
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                raise ApiError("invalid_trigger_id")
            if trigger.exchanged:
                raise ApiError("exchanged_trigger_id")
            if time.monotonic() - trigger.issued_at > self.trigger_ttl_seconds:
                raise ApiError("expired_trigger_id")
            trigger.exchanged = True
            return trigger.user

    # --- response URLs ---------------------------------------------------------------------------
    def issue_response_url(self, kind: str, *, channel: str, user: str, message_ts: str | None = None,
                           original_is_ephemeral: bool = False) -> str:
        """A ``response_url`` on the emulator for one slash command or interaction."""
        with self.lock:
            key = f"{next(self._ids)}/{secrets.token_urlsafe(18)}"
            self._response_targets[key] = ResponseTarget(kind, channel, user, message_ts, original_is_ephemeral,
                                                         time.monotonic())
            return f"{self.base_url}hooks/{kind}/{self.team_id}/{key}"

    def use_response_url(self, key: str) -> ResponseTarget:
        """Count one use of a ``response_url``; ``LookupError`` when unknown, used up or expired."""
        with self.lock:
            target = self._response_targets.get(key)
            if target is None:
                raise LookupError("no_service")
            now = time.monotonic()
            if now - target.issued_at > RESPONSE_URL_TTL_SECONDS:
                raise LookupError("expired_url")
            if len(target.uses) >= RESPONSE_URL_MAX_USES:
                raise LookupError("used_url")
            target.uses.append(now)
            return target
