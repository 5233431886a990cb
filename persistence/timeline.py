"""The append-only timeline of an incident, kept in a Redis stream (the domain's entry: :mod:`incident.timeline`).

Every state change, Slack message, assessment, action audit line and escalation decision is one
entry with a kind, an actor, the time it happened and a JSON payload. Entries that mirror
something in Slack carry a ``dedupe`` identity so event retries and back-fills never add twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from redis import Redis

from incident.clock import from_epoch, to_epoch
from incident.timeline import EntryKind, TimelineEntry
from persistence import lua
from persistence.keys import Keys


class Timeline:
    """The timeline of one incident."""

    def __init__(self, redis: Redis, incident_id: str, keys: Keys | None = None) -> None:
        self._redis = redis
        self._keys = keys or Keys()
        self.incident_id = incident_id
        self._append = redis.register_script(lua.TIMELINE_APPEND_ONCE)

    @property
    def stream_key(self) -> str:
        return self._keys.timeline(self.incident_id)

    def append(
        self,
        kind: str,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        at: datetime | None = None,
        dedupe: str | None = None,
    ) -> str | None:
        """Append an entry; returns its stream id, or ``None`` if ``dedupe`` was already seen."""
        fields = entry_fields(kind, actor, at if at is not None else from_epoch(_redis_now(self._redis)), data)
        result = self._append(
            keys=[self.stream_key, self._keys.timeline_seen(self.incident_id)],
            args=[dedupe or "", fields["kind"], fields["actor"], fields["at"], fields["data"]],
        )
        if result is None:
            return None
        return result.decode() if isinstance(result, bytes) else str(result)

    def has_seen(self, dedupe: str) -> bool:
        """Whether an entry with this dedupe identity exists."""
        return bool(self._redis.sismember(self._keys.timeline_seen(self.incident_id), dedupe))

    def iter_entries(self, kinds: set[str] | None = None, page: int = 1000) -> Iterator[TimelineEntry]:
        """Entries in append order, read page by page (bounded memory for long incidents)."""
        start = "-"
        while True:
            batch = self._redis.xrange(self.stream_key, min=start, max="+", count=page)
            if not batch:
                return
            for raw_id, fields in batch:
                entry = _decode(raw_id, fields)
                if kinds is None or entry.kind in kinds:
                    yield entry
            if len(batch) < page:
                return
            start = "(" + (batch[-1][0].decode() if isinstance(batch[-1][0], bytes) else batch[-1][0])

    def entries(self, kinds: set[str] | None = None) -> list[TimelineEntry]:
        """All entries (optionally of some kinds), in append order."""
        return list(self.iter_entries(kinds))

    def latest(self, kind: str) -> TimelineEntry | None:
        """The newest entry of one kind, scanning backwards."""
        start = "+"
        while True:
            batch = self._redis.xrevrange(self.stream_key, max=start, min="-", count=200)
            if not batch:
                return None
            for raw_id, fields in batch:
                entry = _decode(raw_id, fields)
                if entry.kind == kind:
                    return entry
            if len(batch) < 200:
                return None
            start = "(" + (batch[-1][0].decode() if isinstance(batch[-1][0], bytes) else batch[-1][0])

    def __len__(self) -> int:
        return int(self._redis.xlen(self.stream_key))


def entry_fields(kind: str, actor: str, at: datetime, data: dict[str, Any] | None) -> dict[str, str]:
    """The stream fields of one entry (the wire format; the Lua side is :data:`persistence.lua.TIMELINE_APPEND`).

    ``kind`` must be an :class:`~incident.timeline.EntryKind` (or its value): an unnamed kind is refused here,
    so nothing is written that the post-mortem has not said it uses or ignores.
    """
    try:
        kind = EntryKind(kind).value
    except ValueError:
        raise ValueError(f"unknown timeline entry kind {kind!r}: add it to incident.timeline.EntryKind") from None
    return {"kind": kind, "actor": actor, "at": repr(to_epoch(at)), "data": json.dumps(data or {}, default=str)}


def _redis_now(redis: Redis) -> float:
    seconds, micros = redis.time()
    return seconds + micros / 1_000_000


def _decode(raw_id: bytes | str, fields: dict[bytes, bytes]) -> TimelineEntry:
    text = {k.decode(): v.decode() for k, v in fields.items()}
    return TimelineEntry(
        id=raw_id.decode() if isinstance(raw_id, bytes) else raw_id,
        kind=text["kind"],
        actor=text["actor"],
        at=from_epoch(float(text["at"])),
        data=json.loads(text["data"]),
    )
