"""The durable Slack outbox: every queued Slack write, per channel, in Redis, until it was sent.

Why per channel: Slack limits ``chat.postMessage`` per channel (about one a second). A single queue
would make every channel wait behind the busiest one — the stakeholder channel, which every
incident's updates reach — so each channel has its own FIFO (a list) and a place in one sorted set
that says when it may send next. A channel held back by a 429's ``Retry-After`` waits alone; the
drainers serve the others meanwhile.

Why a lease per channel: several processes drain (every bot and worker replica), but one channel's
writes must go out in order, one at a time. A drainer holds the channel's lease while it sends the
head; it pops the head only after Slack accepted it (:meth:`OutboxStore.done`). A drainer that dies
mid-send loses its lease after :data:`LEASE_MS` and the next one sends the head again — with the
same post id and a look at the channel first, so Slack shows it once (``chat.client.SlackClient``).

Persistence only (Redis and the scripts in :mod:`persistence.lua`); what an intent means is
:mod:`service.outbox`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

from persistence import lua
from persistence.keys import Keys

LEASE_MS = 60_000
"""Longer than one send may take (the client's timeouts and its own retries of a lost answer)."""
PUSHED_TTL_SECONDS = 7 * 24 * 3600
"""How long a queued post id is remembered: far longer than any replay of a command comes after it."""


@dataclass(frozen=True)
class Claimed:
    """The head write of a channel, now ours to send."""

    channel: str
    raw: str
    """The stored JSON (given back to :meth:`OutboxStore.done`, which pops it only if it is still the head)."""
    attempt: int
    """1 on the first delivery; more after a drainer died or a send failed."""

    @property
    def intent(self) -> dict[str, Any]:
        return dict(json.loads(self.raw))


def _now_ms() -> int:
    return int(time.time() * 1000)


class OutboxStore:
    """The outbox of one installation."""

    def __init__(self, redis: Redis, keys: Keys, *, lease_ms: int = LEASE_MS) -> None:
        self.redis, self.keys, self.lease_ms = redis, keys, lease_ms
        self._push = redis.register_script(lua.OUTBOX_PUSH)
        self._claim = redis.register_script(lua.OUTBOX_CLAIM)
        self._done = redis.register_script(lua.OUTBOX_DONE)
        self._defer = redis.register_script(lua.OUTBOX_DEFER)
        self._rewrite = redis.register_script(lua.OUTBOX_REWRITE)

    def push(self, channel: str, intent: dict[str, Any], *, once: bool = False) -> int:
        """Append a write for ``channel``; returns how many now wait for it (this one included).

        ``once``: the intent's ``post_id`` is deterministic (a replayed command computes the same one), so
        it is queued only if it was not queued before (a marker kept :data:`PUSHED_TTL_SECONDS`).
        """
        keys = [self.keys.outbox(channel), self.keys.outbox_ready()]
        args: list[Any] = [channel, json.dumps(intent, default=str), _now_ms()]
        if once:
            keys.append(self.keys.outbox_pushed(str(intent["post_id"])))
            args.append(PUSHED_TTL_SECONDS)
        return int(self._push(keys=keys, args=args))

    def due_channels(self, limit: int = 32) -> list[str]:
        """Channels whose next write may go out now and nobody sends, the longest-waiting first."""
        raw = self.redis.zrangebyscore(self.keys.outbox_ready(), "-inf", _now_ms(), start=0, num=limit)
        return [c.decode() if isinstance(c, bytes) else str(c) for c in raw]

    def claim(self, channel: str, owner: str) -> Claimed | None:
        """Take ``channel``'s lease and its head write, if it is due and nobody else sends it."""
        result = self._claim(keys=self._channel_keys(channel), args=[channel, owner, self.lease_ms, _now_ms()])
        if not result:
            return None
        raw, attempt = result
        return Claimed(channel, raw.decode() if isinstance(raw, bytes) else str(raw), int(attempt))

    def done(self, claimed: Claimed, owner: str, *, pause_ms: int = 0) -> bool:
        """The head was sent (or given up on): pop it and release the channel (next write after ``pause_ms``)."""
        return bool(self._done(keys=self._channel_keys(claimed.channel),
                               args=[claimed.channel, owner, claimed.raw, _now_ms() + pause_ms]))

    def defer(self, claimed: Claimed, owner: str, seconds: float) -> bool:
        """Not now (a 429 or a transient error): keep the head, try the channel again in ``seconds``."""
        return self.release(claimed.channel, owner, seconds)

    def release(self, channel: str, owner: str, seconds: float = 0.0) -> bool:
        """Give ``channel``'s lease back if it is ``owner``'s (due again in ``seconds``); ``False``: it was not."""
        return bool(self._defer(keys=[self.keys.outbox_lease(channel), self.keys.outbox_ready()],
                                args=[channel, owner, _now_ms() + int(seconds * 1000)]))

    def peek(self, channel: str, limit: int) -> list[str]:
        """The first ``limit`` writes waiting for ``channel`` (stored JSON), oldest first."""
        return [r.decode() if isinstance(r, bytes) else str(r) for r in self.redis.lrange(self.keys.outbox(channel), 0,
                                                                                          limit - 1)]

    def rewrite(self, claimed: Claimed, owner: str, old: list[str], new: list[dict[str, Any]]) -> bool:
        """Replace the channel's first writes ``old`` (as :meth:`peek` read them) by ``new`` and release the channel.

        Atomic and guarded: only the lease holder may, and only while those writes are still the head
        (writes queued meanwhile are behind them and stay). The coalescing of a channel that is behind
        (:mod:`service.fan_in`) uses it."""
        raws = [json.dumps(intent, default=str) for intent in new]
        return bool(self._rewrite(keys=self._channel_keys(claimed.channel),
                                  args=[claimed.channel, owner, len(old), len(raws), *old, *raws, _now_ms()]))

    def backlog(self, channel: str) -> int:
        """Writes waiting for ``channel``."""
        return int(self.redis.llen(self.keys.outbox(channel)))

    def waits_until(self, channel: str) -> float | None:
        """When (epoch seconds) ``channel`` may send next, or ``None`` when nothing waits for it (now, while a
        drainer is sending its head: the lease's end is its due time then, not a wait Slack asked for)."""
        score = self.redis.zscore(self.keys.outbox_ready(), channel)
        if score is None:
            return None
        return time.time() if self.redis.exists(self.keys.outbox_lease(channel)) else float(score) / 1000

    def pending(self) -> int:
        """Writes waiting over all channels."""
        total = 0
        for channel in self.redis.zrange(self.keys.outbox_ready(), 0, -1):
            total += int(self.redis.llen(self.keys.outbox(channel.decode() if isinstance(channel, bytes) else channel)))
        return total

    def _channel_keys(self, channel: str) -> list[str]:
        return [self.keys.outbox_lease(channel), self.keys.outbox(channel), self.keys.outbox_ready(),
                self.keys.outbox_attempts()]
