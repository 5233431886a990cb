"""Checks shared by Web API handlers: resolving channels and messages with Slack's error codes."""

from __future__ import annotations

from typing import Any

from sandbox.slack.errors import ApiError
from sandbox.slack.model import Channel, Message, ts_key
from sandbox.slack.webapi import ApiRequest


def channel_arg(req: ApiRequest, name: str = "channel", *, member: bool = False, writable: bool = False,
                missing: str = "channel_not_found") -> Channel:
    """The channel named by argument ``name``.

    ``channel_not_found`` when unknown (or private and the caller is not in it);
    ``not_in_channel`` when ``member`` and the caller is not a member; ``is_archived`` when
    ``writable`` and the channel is archived.
    """
    ref = req.get(name)
    if ref is None:
        raise ApiError(missing)
    channel = req.workspace.resolve_channel(ref)
    if channel is None or (channel.is_private and req.user_id not in channel.members):
        raise ApiError("channel_not_found")
    if writable and channel.is_archived:
        raise ApiError("is_archived")
    if member and req.user_id not in channel.members:
        raise ApiError("not_in_channel")
    return channel


def message_arg(req: ApiRequest, channel: Channel, name: str, *, missing: str = "message_not_found") -> Message:
    """The message of ``channel`` whose ``ts`` is argument ``name`` (``message_not_found`` if none)."""
    ts = req.get(name)
    if ts is None:
        raise ApiError(missing)
    message = req.workspace.message(channel.id, ts)
    if message is None:
        raise ApiError("message_not_found")
    return message


def valid_ts(value: str | None, error: str) -> str | None:
    """``value`` if it looks like a Slack timestamp (``"123"`` or ``"123.456"``), else ``error``."""
    if value is None:
        return None
    seconds, dot, fraction = value.partition(".")
    if not seconds.isdigit() or (dot and fraction and not fraction.isdigit()):
        raise ApiError(error)
    return value


def in_window(ts: str, oldest: str | None, latest: str | None, inclusive: bool) -> bool:
    """Whether ``ts`` falls between ``oldest`` and ``latest`` (bounds excluded unless ``inclusive``)."""
    key = ts_key(ts)
    if oldest is not None:
        low = ts_key(oldest)
        if key < low or (key == low and not inclusive):
            return False
    if latest is not None:
        high = ts_key(latest)
        if key > high or (key == high and not inclusive):
            return False
    return True


def page(items: list[Any], start: int, limit: int) -> tuple[list[Any], bool]:
    """``items[start:start+limit]`` and whether more follow."""
    return items[start:start + limit], start + limit < len(items)
