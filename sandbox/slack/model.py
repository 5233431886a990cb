"""The objects of the emulated workspace, and their Web API (JSON) shapes.

Plain dataclasses owned by :class:`sandbox.slack.state.Workspace`, which guards them with one
lock; nothing here locks or talks HTTP. ``to_api`` renders what Slack's Web API returns for the
object, ``record`` what tests read through the emulator's inspection helpers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

SYSTEM_SUBTYPES: frozenset[str] = frozenset({
    "channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name", "channel_archive",
})
"""Message subtypes Slack writes itself when a channel changes; kept in history like Slack does."""


class TsClock:
    """Slack message timestamps: ``"<unix seconds>.<6 digits>"``, unique and strictly increasing."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        """A fresh ``ts`` not before the wall clock and after every earlier one."""
        with self._lock:
            self._last = max(int(time.time() * 1_000_000), self._last + 1)
            seconds, micros = divmod(self._last, 1_000_000)
            return f"{seconds}.{micros:06d}"


def ts_key(ts: str) -> tuple[int, int]:
    """Sort/compare key of a ``ts`` string (``"12.5"`` and ``"12.000005"`` differ, as in Slack)."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds or 0), int((fraction or "0").ljust(6, "0")[:6])


@dataclass
class User:
    """A workspace member; ``is_bot`` for the app's bot user."""

    id: str
    name: str
    team_id: str
    is_bot: bool = False
    real_name: str = ""
    deleted: bool = False

    def to_api(self) -> dict[str, Any]:
        """The ``user`` object of ``users.info``."""
        real = self.real_name or self.name
        return {
            "id": self.id, "team_id": self.team_id, "name": self.name, "deleted": self.deleted,
            "real_name": real, "tz": "Etc/UTC", "tz_offset": 0, "is_bot": self.is_bot,
            "is_admin": False, "is_owner": False, "is_app_user": False,
            "profile": {"real_name": real, "display_name": self.name, "team": self.team_id},
        }


@dataclass
class Channel:
    """A public or private channel; ``topic``/``purpose`` are the plain strings."""

    id: str
    name: str
    creator: str
    created: int
    is_private: bool = False
    members: list[str] = field(default_factory=list)
    topic: str = ""
    purpose: str = ""
    topic_meta: tuple[str, int] = ("", 0)
    purpose_meta: tuple[str, int] = ("", 0)
    is_archived: bool = False
    pins: list[str] = field(default_factory=list)

    def to_api(self, viewer: str) -> dict[str, Any]:
        """The ``channel`` object of ``conversations.info`` as seen by ``viewer``."""
        return {
            "id": self.id, "name": self.name, "name_normalized": self.name, "is_channel": not self.is_private,
            "is_group": self.is_private, "is_im": False, "is_mpim": False, "is_private": self.is_private,
            "created": self.created, "creator": self.creator, "is_archived": self.is_archived,
            "is_general": False, "is_shared": False, "is_ext_shared": False, "is_org_shared": False,
            "is_member": viewer in self.members, "num_members": len(self.members),
            "topic": {"value": self.topic, "creator": self.topic_meta[0], "last_set": self.topic_meta[1]},
            "purpose": {"value": self.purpose, "creator": self.purpose_meta[0], "last_set": self.purpose_meta[1]},
            "previous_names": [],
        }


@dataclass
class Message:
    """One message in a channel's history (top level, thread parent or reply)."""

    channel: str
    ts: str
    user: str
    text: str
    team: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    edited: dict[str, str] | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    reply_ts: list[str] = field(default_factory=list)
    reply_users: list[str] = field(default_factory=list)
    parent_user: str | None = None
    pinned: bool = False
    reply_broadcast: bool = False

    @property
    def is_reply(self) -> bool:
        """Whether this message lives inside a thread (not its parent)."""
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_api(self) -> dict[str, Any]:
        """The message object of ``conversations.history`` and the Events API."""
        body: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text,
                                "team": self.team}
        if self.subtype:
            body["subtype"] = self.subtype
        if self.bot_id:
            body["bot_id"] = self.bot_id
            body["app_id"] = self.app_id
        if self.blocks:
            body["blocks"] = self.blocks
        if self.thread_ts:
            body["thread_ts"] = self.thread_ts
        if self.is_reply and self.parent_user:
            body["parent_user_id"] = self.parent_user
        if self.reply_ts:
            body["reply_count"] = len(self.reply_ts)
            body["reply_users"] = list(self.reply_users)
            body["reply_users_count"] = len(self.reply_users)
            body["latest_reply"] = self.reply_ts[-1]
        if self.edited:
            body["edited"] = dict(self.edited)
        if self.reactions:
            body["reactions"] = [{"name": n, "users": list(u), "count": len(u)} for n, u in self.reactions.items()]
        if self.pinned:
            body["pinned_to"] = [self.channel]
        if self.files:
            body["files"] = [dict(f) for f in self.files]
            body["upload"] = True
        body.update(self.extra)
        return body

    def record(self) -> dict[str, Any]:
        """What tests read: the API shape with every inspected key present."""
        body = self.to_api()
        body.setdefault("blocks", None)
        body.setdefault("thread_ts", None)
        body.setdefault("edited", None)
        body.setdefault("reactions", [])
        body.setdefault("reply_count", 0)
        body["channel"] = self.channel
        body["pinned"] = self.pinned
        return body


@dataclass
class Usergroup:
    """A user group (``@responders``)."""

    id: str
    handle: str
    users: list[str]
    enabled: bool = True


@dataclass
class File:
    """A file from the external upload flow (ticket → bytes → completion)."""

    id: str
    filename: str
    declared_length: int
    user: str
    created: int
    upload_key: str
    title: str = ""
    content: bytes | None = None
    completed: bool = False
    channel: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None

    def to_api(self, base_url: str) -> dict[str, Any]:
        """The ``file`` object attached to messages and completion responses."""
        name = self.filename
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        return {
            "id": self.id, "name": name, "title": self.title or name, "filetype": extension,
            "mimetype": "text/markdown" if extension == "md" else "application/octet-stream",
            "size": len(self.content or b""), "user": self.user, "created": self.created,
            "url_private": f"{base_url}files/{self.id}/{name}",
            "permalink": f"{base_url}files/{self.id}",
        }

    def info_api(self, base_url: str, team_id: str, channel: Channel | None) -> dict[str, Any]:
        """The ``file`` object of ``files.info``: :meth:`to_api` plus where the file is shared.

        ``channel`` is the channel the completion shared it into (``None`` when it was completed
        unshared). Public channels are listed in ``channels`` and ``shares.public``, private ones in
        ``groups`` and ``shares.private``, each share naming the message that carries the file.
        """
        body = self.to_api(base_url)
        body.update({"is_public": False, "comments_count": 0, "channels": [], "groups": [], "ims": [],
                     "shares": {}})
        if channel is not None and self.message_ts is not None:
            share: dict[str, Any] = {"ts": self.message_ts, "channel_name": channel.name, "team_id": team_id,
                                     "share_user_id": self.user, "reply_count": 0, "reply_users": [],
                                     "reply_users_count": 0}
            if self.thread_ts:
                share["thread_ts"] = self.thread_ts
            kind, listed = ("private", "groups") if channel.is_private else ("public", "channels")
            body[listed] = [channel.id]
            body["shares"] = {kind: {channel.id: [share]}}
            body["is_public"] = not channel.is_private
        return body


@dataclass
class View:
    """A modal opened by ``views.open`` (and updated by ``views.update``)."""

    id: str
    user: str
    definition: dict[str, Any]
    hash: str
    team_id: str
    app_id: str
    bot_id: str
    is_open: bool = True
    root_view_id: str | None = None
    previous_view_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def callback_id(self) -> str:
        """The view's ``callback_id`` (empty when it has none)."""
        return str(self.definition.get("callback_id", ""))

    def to_api(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``view`` object Slack returns and puts in ``view_submission`` payloads."""
        d = self.definition
        return {
            "id": self.id, "team_id": self.team_id, "type": d.get("type", "modal"),
            "title": d.get("title"), "submit": d.get("submit"), "close": d.get("close"),
            "blocks": d.get("blocks", []), "private_metadata": d.get("private_metadata", ""),
            "callback_id": d.get("callback_id", ""), "external_id": d.get("external_id", ""),
            "state": {"values": values or {}}, "hash": self.hash,
            "clear_on_close": bool(d.get("clear_on_close", False)),
            "notify_on_close": bool(d.get("notify_on_close", False)),
            "root_view_id": self.root_view_id or self.id, "previous_view_id": self.previous_view_id,
            "app_id": self.app_id, "app_installed_team_id": self.team_id, "bot_id": self.bot_id,
        }
