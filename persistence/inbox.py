"""The durable command inbox: every acknowledged command, click and submission, in Redis until its work is done.

Why: Slack is acknowledged within 3 s and the work runs afterwards, on the bot's post-ack pool. If that
work lived only in the process's memory, a SIGKILL (an OOM kill, a node lost) between the ack and the
end of the work would lose something the user was told is happening. So the listener records the
request here *before* it acknowledges Slack; the entry is leased to the process that runs it, which
renews the lease while the work runs and removes the entry when the work is done
(:meth:`InboxStore.done`). An entry whose lease ends unrenewed belonged to a process that died: any
replica takes it over (:meth:`InboxStore.claim_expired`) and runs it again.

Fenced: an entry has one owner at a time, and only the owner finishes it; a replay's effects are made
idempotent by the service layer (:mod:`service.inbox`: deterministic post ids and timeline identities
derived from the entry id), so a replay after a crash never shows anything twice.

Persistence only (Redis and the scripts in :mod:`persistence.lua`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis import Redis

from persistence import lua
from persistence.keys import Keys

LEASE_MS = 15_000
"""How long an entry stays with its process without a renewal; the process renews every third of it.
A replay starts about this long after a crash."""


@dataclass(frozen=True)
class InboxEntry:
    """One acknowledged request, owned by whoever holds it now."""

    id: str
    raw: str
    attempt: int
    """1: the first run (recorded before the ack); more: a replay after its process died."""

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(self.raw))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class InboxStore:
    """The inbox of one installation."""

    def __init__(self, redis: Redis, keys: Keys, *, lease_ms: int = LEASE_MS) -> None:
        self.redis, self.keys, self.lease_ms = redis, keys, lease_ms
        self._record = redis.register_script(lua.INBOX_RECORD)
        self._renew = redis.register_script(lua.INBOX_RENEW)
        self._claim = redis.register_script(lua.INBOX_CLAIM)
        self._done = redis.register_script(lua.INBOX_DONE)

    def _keys(self) -> list[str]:
        return [self.keys.inbox_entries(), self.keys.inbox_due(), self.keys.inbox_owners(),
                self.keys.inbox_attempts()]

    def record(self, body: dict[str, Any], owner: str) -> InboxEntry:
        """Store a request, leased to ``owner`` (call before acknowledging Slack)."""
        entry_id = uuid.uuid4().hex
        raw = json.dumps(body, default=str)
        self._record(keys=self._keys(), args=[entry_id, raw, owner, _now_ms() + self.lease_ms])
        return InboxEntry(entry_id, raw, 1)

    def renew(self, ids: list[str], owner: str) -> int:
        """Extend ``owner``'s leases on ``ids``; returns how many it still held."""
        if not ids:
            return 0
        return int(self._renew(keys=self._keys(), args=[owner, _now_ms() + self.lease_ms, *ids]))

    def claim_expired(self, owner: str, limit: int = 16) -> list[InboxEntry]:
        """Take over up to ``limit`` entries whose lease ended (their process stopped renewing it)."""
        now = _now_ms()
        rows = self._claim(keys=self._keys(), args=[owner, now, now + self.lease_ms, limit])
        return [InboxEntry(_text(entry_id), _text(raw), int(attempt)) for entry_id, raw, attempt in rows]

    def done(self, entry_id: str, owner: str) -> bool:
        """The work is done: remove the entry, if ``owner`` still holds it."""
        return bool(self._done(keys=self._keys(), args=[entry_id, owner]))

    def pending(self) -> int:
        """Entries not finished (running now, or waiting for a replay)."""
        return int(self.redis.zcard(self.keys.inbox_due()))
