"""The channel log: every message, thread reply, edit, deletion, reaction and pin of an incident
channel, captured into the incident timeline.

Two paths feed it — Events API deliveries as they happen, and a back-fill from
``conversations.history``/``conversations.replies`` after downtime — and both derive the same
dedupe identity for the same Slack fact, so the timeline holds each fact exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chat.client import SlackClient
from incident.clock import from_epoch
from persistence.timeline import Timeline
from incident.timeline import EntryKind

MESSAGE_KINDS: frozenset[str] = frozenset({
    "message", "message_edited", "message_deleted", "reaction_added", "reaction_removed", "pin_added", "pin_removed",
})
IGNORED_SUBTYPES: frozenset[str] = frozenset({"channel_join", "channel_leave", "channel_topic", "channel_purpose"})


def _message_data(channel: str, message: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": channel,
        "ts": message.get("ts"),
        "user": message.get("user") or message.get("bot_id") or "unknown",
        "text": message.get("text", ""),
    }
    if message.get("thread_ts") and message.get("thread_ts") != message.get("ts"):
        data["thread_ts"] = message["thread_ts"]
    if message.get("bot_id"):
        data["bot"] = True
    if message.get("files"):
        data["files"] = [f.get("name") or f.get("id") for f in message["files"]]
    if message.get("subtype"):
        data["subtype"] = message["subtype"]
    return data


def record_message(timeline: Timeline, channel: str, message: dict[str, Any]) -> int:
    """Record a message as seen in history or a plain ``message`` event; returns entries added."""
    if message.get("subtype") in IGNORED_SUBTYPES or not message.get("ts"):
        return 0
    ts = str(message["ts"])
    data = _message_data(channel, message)
    added = 0
    if timeline.append(EntryKind.MESSAGE, str(data["user"]), data, at=from_epoch(float(ts)), dedupe=f"message:{ts}"):
        added += 1
    edited = message.get("edited")
    if edited and edited.get("ts"):
        added += record_edit(timeline, channel, message, str(edited["ts"]))
    for reaction in message.get("reactions", []) or []:
        for user in reaction.get("users", []):
            added += record_reaction(timeline, channel, ts, str(reaction.get("name")), str(user), added=True)
    if channel in (message.get("pinned_to") or []):
        added += record_pin(timeline, channel, ts, str(message.get("user", "unknown")), added=True)
    return added


def record_edit(timeline: Timeline, channel: str, message: dict[str, Any], edited_ts: str) -> int:
    ts = str(message["ts"])
    data = {"channel": channel, "ts": ts, "text": message.get("text", ""), "edited_ts": edited_ts}
    actor = str(message.get("edited", {}).get("user") or message.get("user") or "unknown")
    return int(bool(timeline.append(EntryKind.MESSAGE_EDITED, actor, data, at=from_epoch(float(edited_ts)),
                                    dedupe=f"edit:{ts}:{edited_ts}")))


def record_reaction(timeline: Timeline, channel: str, ts: str, name: str, user: str, *, added: bool,
                    event_ts: str | None = None) -> int:
    kind = EntryKind.REACTION_ADDED if added else EntryKind.REACTION_REMOVED
    dedupe = f"reaction:{ts}:{name}:{user}" if added else f"unreaction:{ts}:{name}:{user}:{event_ts}"
    at = from_epoch(float(event_ts)) if event_ts else None
    return int(bool(timeline.append(kind, user, {"channel": channel, "ts": ts, "reaction": name}, at=at, dedupe=dedupe)))


def record_pin(timeline: Timeline, channel: str, ts: str, user: str, *, added: bool, event_ts: str | None = None) -> int:
    kind = EntryKind.PIN_ADDED if added else EntryKind.PIN_REMOVED
    dedupe = f"pin:{ts}" if added else f"unpin:{ts}:{event_ts}"
    at = from_epoch(float(event_ts)) if event_ts else None
    return int(bool(timeline.append(kind, user, {"channel": channel, "ts": ts}, at=at, dedupe=dedupe)))


def record_event(timeline: Timeline, event: dict[str, Any]) -> int:
    """Record one Events API event of an incident channel; returns entries added (0 for repeats)."""
    kind = event.get("type")
    if kind == "message":
        channel = str(event.get("channel"))
        subtype = event.get("subtype")
        if subtype == "message_changed":
            message = event.get("message", {})
            edited_ts = str((message.get("edited") or {}).get("ts") or event.get("event_ts") or event.get("ts"))
            return record_edit(timeline, channel, message, edited_ts)
        if subtype == "message_deleted":
            ts = str(event.get("deleted_ts") or (event.get("previous_message") or {}).get("ts"))
            at = from_epoch(float(event.get("event_ts") or event.get("ts")))
            return int(bool(timeline.append(EntryKind.MESSAGE_DELETED, "unknown", {"channel": channel, "ts": ts}, at=at,
                                            dedupe=f"delete:{ts}")))
        return record_message(timeline, channel, event)
    if kind in ("reaction_added", "reaction_removed"):
        item = event.get("item", {})
        return record_reaction(timeline, str(item.get("channel")), str(item.get("ts")), str(event.get("reaction")),
                               str(event.get("user")), added=kind == "reaction_added", event_ts=event.get("event_ts"))
    if kind in ("pin_added", "pin_removed"):
        item = event.get("item", {})
        message = item.get("message", {})
        ts = str(message.get("ts") or item.get("ts") or "")
        return record_pin(timeline, str(event.get("channel_id") or item.get("channel")), ts, str(event.get("user")),
                          added=kind == "pin_added", event_ts=event.get("event_ts"))
    return 0


def _paginate(slack: SlackClient, method: str, **params: Any) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        body = slack.call(method, cursor=cursor, limit=200, **params)
        yield from body.get("messages", [])
        cursor = (body.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return


def backfill(slack: SlackClient, timeline: Timeline, channel: str, oldest: str | None = None) -> int:
    """Capture what the events missed: history since ``oldest`` and every thread, following cursors."""
    added = 0
    threads: list[str] = []
    for message in _paginate(slack, "conversations.history", channel=channel, oldest=oldest, inclusive=True):
        added += record_message(timeline, channel, message)
        if int(message.get("reply_count") or 0) > 0:
            threads.append(str(message["ts"]))
    for thread_ts in threads:
        for reply in _paginate(slack, "conversations.replies", channel=channel, ts=thread_ts):
            if reply.get("ts") != thread_ts:
                added += record_message(timeline, channel, reply)
    return added
