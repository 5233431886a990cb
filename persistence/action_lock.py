"""The per-cluster action lock: a Redis lease with a fencing token, so one risky action runs at a time.

``SET <lock> "<fence>:<owner>" NX PX <lease>`` where ``fence`` comes from ``INCR`` on the fence key in
the same script, so every holder has a strictly larger token than the one before. The holder renews
the lease while it works (:class:`LeaseKeeper`, a thread); renew and release are compare-and-set
scripts, so a holder whose lease expired can never extend or delete its successor's lock. A worker
that is SIGKILLed simply stops renewing: the lock expires after one lease and the next drainer sees
the action it left ``running`` under an older fence (→ ``outcome_unknown``, never re-run).

Persistence (Redis only; the scripts are in :mod:`persistence.lua`). Used by :mod:`service.actions` and the benchmark.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

from incident.errors import IncidentBotError, plain_error_text
from persistence import lua
from persistence.keys import Keys

log = logging.getLogger(__name__)


class LeaseLost(IncidentBotError):
    """The action lock is no longer ours (lease expired); stop before the next mutating call."""


def default_owner() -> str:
    """``host:pid:random`` — unique per lock attempt, readable in ``/k8s queue``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ActionLock:
    """One attempt at holding the per-cluster lock (create a new one per acquisition)."""

    def __init__(self, redis: Redis, cluster: str, *, lease_seconds: float, keys: Keys | None = None,
                 owner: str | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.cluster = cluster
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.owner = owner or default_owner()
        self.fence: int | None = None
        self._acquire = redis.register_script(lua.LOCK_ACQUIRE)
        self._renew = redis.register_script(lua.LOCK_RENEW)
        self._release = redis.register_script(lua.LOCK_RELEASE)

    @property
    def key(self) -> str:
        return self.keys.action_lock(self.cluster)

    @property
    def token(self) -> str:
        """The lock's value while we hold it: ``"<fence>:<owner>"``."""
        if self.fence is None:
            raise LeaseLost(plain_error_text("lock_never_acquired"))
        return f"{self.fence}:{self.owner}"

    def acquire(self) -> int | None:
        """Take the lock if free; returns the new fencing token, or ``None`` when someone holds it."""
        fence = self._acquire(keys=[self.key, self.keys.action_fence(self.cluster)], args=[self.owner, self.lease_ms])
        if fence is None:
            return None
        self.fence = int(fence)
        return self.fence

    def renew(self) -> bool:
        """Extend the lease by a full lease if still ours; false when it was lost."""
        return self.fence is not None and bool(self._renew(keys=[self.key], args=[self.token, self.lease_ms]))

    def release(self) -> bool:
        """Delete the lock if still ours; false when it had already expired (or passed to someone else)."""
        if self.fence is None:
            return False
        return bool(self._release(keys=[self.key], args=[self.token]))

    def held_by_me(self) -> bool:
        """Whether the lock still holds our token (one GET)."""
        if self.fence is None:
            return False
        value = self.redis.get(self.key)
        return value is not None and value.decode() == self.token

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless the lock is still ours: call before every mutating API call."""
        if not self.held_by_me():
            raise LeaseLost(plain_error_text("lease_expired", cluster=self.cluster, fence=self.fence),
                            hint=plain_error_text("lease_expired_hint"))

    def holder(self) -> tuple[int, str] | None:
        """``(fence, owner)`` of whoever holds the lock now, if anyone."""
        value = self.redis.get(self.key)
        if value is None:
            return None
        fence, _, owner = value.decode().partition(":")
        return int(fence), owner


class LeaseKeeper:
    """Renews a held lock every third of its lease in a daemon thread until closed.

    ``lost`` is set when a renewal finds the lock gone or Redis unreachable for a whole lease, so
    the running action stops before its next mutating call (``check()`` also looks at Redis).
    """

    def __init__(self, lock: ActionLock, interval: float | None = None) -> None:
        self.lock = lock
        self.interval = interval if interval is not None else lock.lease_ms / 3000
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lock.cluster}", daemon=True)

    def _run(self) -> None:
        failing_since: float | None = None
        import time

        while not self._stop.wait(self.interval):
            try:
                if not self.lock.renew():
                    self.lost.set()
                    return
                failing_since = None
            except RedisError as error:
                failing_since = failing_since or time.monotonic()
                log.warning("renewing the action lock failed: %s", error)
                if time.monotonic() - failing_since >= self.lock.lease_ms / 1000:
                    self.lost.set()
                    return

    def check(self) -> None:
        """Raise :class:`LeaseLost` if the keeper saw the lease go, or the lock is no longer ours."""
        if self.lost.is_set():
            raise LeaseLost(plain_error_text("lease_not_renewed", cluster=self.lock.cluster),
                            hint=plain_error_text("lease_not_renewed_hint"))
        self.lock.check()

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
