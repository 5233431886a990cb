"""Acknowledged work that survives its process: record before the ack, lease while running, replay after a crash.

The bot acknowledges Slack at once and does the work afterwards (``bot.after_ack``). :class:`Inbox` is
what keeps that work from living only in memory: the listener records the request
(:meth:`Inbox.record`, one Redis round trip) before it calls ``ack()``, and the entry stays in Redis
(:mod:`persistence.inbox`) until the work is finished (:meth:`Inbox.finish`). Every bot process runs a
:class:`Keeper` thread that renews the leases of the entries it runs and takes over the entries whose
lease ended unrenewed — those of a process that was SIGKILLed, OOM-killed or lost with its node — and
hands them to a replay function (the bot's, which knows what a command is).

A replay must not show anything twice, and the work it repeats may have partly happened. So work runs
inside a :func:`scope` bound to its entry, and the service layer asks :func:`effect_id` for the identity
of each effect: the outbox uses it as the post id (queued once per id, and looked for in the channel
before a re-send), the timeline as the entry's dedupe identity. The same entry computes the same ids
in the same order, so a replay queues and records only what the first run did not get to.

Fork safety: only bot processes start a :class:`Keeper` (RQ forks its work horses; a forked child must
not inherit a lease-renewing thread's half of a Redis connection).
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job

from persistence.inbox import LEASE_MS, InboxEntry, InboxStore
from persistence.keys import Keys

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Runs of one entry (the first and its replays) before it is given up on: an entry whose work kills
its process every time must not take every replica down in turn."""
SWEEP_SECONDS = 1.0
"""How often a keeper looks for entries to take over."""
RECORD_PATIENCE_SECONDS = 2.0
"""How long recording a request may wait for Redis: Slack wants the ack within 3 s, and a Sentinel failover
(``down-after-milliseconds`` plus the election) often fits. Longer, and the ack says the store is unavailable."""


@dataclass
class _Scope:
    entry_id: str
    attempt: int
    counters: dict[str, int] = field(default_factory=dict)


_current: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("inbox_scope", default=None)


@contextmanager
def scope(entry: InboxEntry) -> Iterator[None]:
    """Run the body as the work of ``entry``: :func:`effect_id` derives its effects' identities from it."""
    token = _current.set(_Scope(entry.id, entry.attempt))
    try:
        yield
    finally:
        _current.reset(token)


def effect_id(what: str) -> str | None:
    """The stable identity of the next effect of kind ``what`` of the running entry (``None`` outside one).

    The n-th call with the same ``what`` inside one entry's work gives the same id on every run of that
    entry, so a replay finds what its first run already did.
    """
    current = _current.get()
    if current is None:
        return None
    n = current.counters.get(what, 0)
    current.counters[what] = n + 1
    return f"{current.entry_id}:{what}:{n}"


def job_once(redis: Redis) -> tuple[str | None, bool]:
    """The RQ job id for the running entry's next job, and whether a job of that id already exists.

    ``(None, False)`` outside an entry (RQ picks an id). Only a replay can find one (the id is made from the
    entry's id): its first run queued it, and it is still queued, running or finished within its result TTL
    (minutes; a replay comes about 15 s after the crash), so it is not queued again."""
    effect = effect_id("job")
    if effect is None:
        return None, False
    job_id = "inbox-" + effect.replace(":", "-")
    return job_id, Job.exists(job_id, connection=redis)


def replaying() -> bool:
    """Whether the running work is a replay (its first run's process died)."""
    current = _current.get()
    return current is not None and current.attempt > 1


def _owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Inbox:
    """This process's side of the inbox: what it records, runs and finishes."""

    def __init__(self, redis: Redis, keys: Keys, *, lease_ms: int = LEASE_MS) -> None:
        self.store = InboxStore(redis, keys, lease_ms=lease_ms)
        self.owner = _owner_token()
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def record(self, body: dict[str, Any]) -> InboxEntry:
        """Keep ``body`` in Redis, ours, until :meth:`finish` (raises ``RedisError`` when Redis is down:
        then nothing was recorded, and Slack must be told so rather than acknowledged). A Redis that is
        away for less than :data:`RECORD_PATIENCE_SECONDS` (a Sentinel failover) is waited for."""
        entry = self.store.record(body, self.owner, patience_seconds=RECORD_PATIENCE_SECONDS)
        with self._lock:
            self._running.add(entry.id)
        return entry

    def finish(self, entry: InboxEntry) -> bool:
        """The work of ``entry`` is done; whether we still held it (``False``: another replica took it over)."""
        with self._lock:
            self._running.discard(entry.id)
        return self.store.done(entry.id, self.owner)

    def release(self, entry: InboxEntry) -> None:
        """Stop renewing ``entry`` without finishing it: another replica replays it after the lease."""
        with self._lock:
            self._running.discard(entry.id)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def renew(self) -> None:
        self.store.renew(self.running(), self.owner)

    def take_over(self, limit: int = 16) -> list[InboxEntry]:
        """Entries of dead processes, now ours (already counted as running, so renewed)."""
        entries = self.store.claim_expired(self.owner, limit)
        with self._lock:
            self._running.update(e.id for e in entries)
        return entries


Replay = Callable[[InboxEntry], None]
"""Runs a taken-over entry (the bot's: it knows commands, clicks, submissions) and finishes it."""


class Keeper:
    """The thread that renews this process's leases and replays the entries of dead processes."""

    def __init__(self, inbox: Inbox, replay: Replay, *, sweep_seconds: float = SWEEP_SECONDS) -> None:
        self.inbox, self.replay, self.sweep_seconds = inbox, replay, sweep_seconds
        self._stop = threading.Event()
        self._taking_over = threading.Event()
        self._taking_over.set()
        self._thread = threading.Thread(target=self._run, name="inbox-keeper", daemon=True)
        self._renew_every = max(0.2, inbox.store.lease_ms / 3000)

    def start(self) -> "Keeper":
        self._thread.start()
        return self

    def stop_taking_over(self) -> None:
        """A stopping process keeps renewing what it runs but takes nothing new."""
        self._taking_over.clear()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        last_renew = 0.0
        while not self._stop.wait(self.sweep_seconds):
            try:
                now = time.monotonic()
                if now - last_renew >= self._renew_every:
                    self.inbox.renew()
                    last_renew = now
                if self._taking_over.is_set():
                    self._take_over()
            except RedisError:
                log.warning("inbox: Redis unavailable; leases are renewed when it is back", exc_info=True)
            except Exception:  # noqa: BLE001 - the keeper must outlive any one entry
                log.exception("inbox: unexpected error in the keeper; it carries on")

    def _take_over(self) -> None:
        for entry in self.inbox.take_over():
            if entry.attempt > MAX_ATTEMPTS:
                log.error("inbox: giving up on %s after %d runs (its work may kill its process): %s", entry.id,
                          entry.attempt - 1, entry.raw[:500])
                self.inbox.finish(entry)
                continue
            log.warning("inbox: replaying %s (run %d; the process that ran it stopped)", entry.id, entry.attempt)
            self.replay(entry)
