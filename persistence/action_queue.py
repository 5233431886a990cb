"""The per-cluster FIFO of confirmed actions, and the fenced steps that run its head.

A Redis list of action ids: confirmation appends (``RPUSH``, inside the confirm script of
:class:`persistence.action_store.ActionStore`), the drainer reads the head (``LINDEX 0``) and removes it
only when the action reached a final state. Position is ``LPOS`` + 1, so the head (running or next)
is position 1.

Every state write of the drainer is a script that checks the *fence*: ``start`` needs the lock to
hold our token; ``finish`` needs the action still ``running`` under our fence; ``mark_unknown``
needs our lock and the action ``running`` under another, older fence. A worker that lost its lease
can therefore never overwrite what its successor decided, and vice versa. Each final write appends
the audit entry to the incident timeline in the same script, so the audit can never miss an outcome.

Persistence (Redis only; the scripts are in :mod:`persistence.lua`). Used by :mod:`service.actions` and the bot's action commands.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from redis import Redis

from incident.actions import ActionRequest, ActionStatus
from incident.clock import Clock, SystemClock, to_epoch
from incident.errors import ConfirmationError, NotPermitted, error_text
from persistence import lua
from persistence.keys import Keys


class ActionQueue:
    """The FIFO of one cluster."""

    def __init__(self, redis: Redis, cluster: str, keys: Keys | None = None, clock: Clock | None = None) -> None:
        self.redis = redis
        self.cluster = cluster
        self.keys = keys or Keys()
        self.clock = clock or SystemClock()
        self._start = redis.register_script(lua.QUEUE_START)
        self._finish = redis.register_script(lua.QUEUE_FINISH)
        self._unknown = redis.register_script(lua.QUEUE_MARK_UNKNOWN)
        self._cancel = redis.register_script(lua.QUEUE_CANCEL)

    @property
    def key(self) -> str:
        return self.keys.action_queue(self.cluster)

    # --- reading --------------------------------------------------------------------------------
    def head(self) -> str | None:
        raw = self.redis.lindex(self.key, 0)
        return raw.decode() if raw is not None else None

    def ids(self) -> list[str]:
        return [raw.decode() for raw in self.redis.lrange(self.key, 0, -1)]

    def position(self, action_id: str) -> int | None:
        """1-based position (1 = running or next), ``None`` when not in the queue."""
        index = self.redis.lpos(self.key, action_id)
        return int(index) + 1 if index is not None else None

    def __len__(self) -> int:
        return int(self.redis.llen(self.key))

    # --- the drainer's fenced steps ---------------------------------------------------------------
    def start(self, action_id: str, *, token: str, fence: int, worker: str, at: datetime | None = None) -> str:
        """``queued`` → ``running`` under ``fence`` if we hold the lock and it is the head.

        Returns ``"started"``, ``"lost"`` (lock not ours), ``"moved"`` (not the head) or the status
        it was found in.
        """
        moment = at or self.clock.now()
        result = self._start(keys=[self.keys.action_lock(self.cluster), self.key, self.keys.action(action_id)],
                             args=[token, action_id, str(fence), repr(to_epoch(moment)), worker])
        return result.decode() if isinstance(result, bytes) else str(result)

    def finish(self, request: ActionRequest, status: ActionStatus, outcome: str, *, fence: int,
               at: datetime | None = None) -> bool:
        """``running`` (under ``fence``) → final, out of the queue, audit appended — or nothing, false."""
        moment = at or self.clock.now()
        audited = _audited(request, status, outcome, moment)
        return bool(self._finish(
            keys=[self.keys.action(request.id), self.key, self._timeline_key(request)],
            args=[request.id, str(fence), status.value, outcome, repr(to_epoch(moment)),
                  json.dumps(audited, default=str), request.requested_by, "1" if request.incident_id else "0"],
        ))

    def mark_unknown(self, request: ActionRequest, *, token: str, outcome: str, at: datetime | None = None) -> bool:
        """An action left ``running`` by a dead holder (older fence) → ``outcome_unknown``; never re-run."""
        moment = at or self.clock.now()
        audited = _audited(request, ActionStatus.OUTCOME_UNKNOWN, outcome, moment)
        return bool(self._unknown(
            keys=[self.keys.action_lock(self.cluster), self.keys.action(request.id), self.key,
                  self._timeline_key(request)],
            args=[token, request.id, str(request.fence), outcome, repr(to_epoch(moment)),
                  json.dumps(audited, default=str), request.requested_by, "1" if request.incident_id else "0"],
        ))

    def drop(self, action_id: str) -> None:
        """Remove an id whose record is gone or already final (defensive; should not happen)."""
        self.redis.lrem(self.key, 1, action_id)

    # --- people ---------------------------------------------------------------------------------
    def cancel(self, request: ActionRequest, user_id: str, *, commander: str | None = None) -> None:
        """Cancel a request not yet running; only its requester or the incident commander may.

        Raises :class:`NotPermitted` for anyone else and :class:`ConfirmationError` (nothing changed)
        once it runs or has ended.
        """
        if user_id not in (request.requested_by, commander):
            raise NotPermitted(error_text("cancel_not_permitted", requested_by=request.requested_by,
                                          action_id=request.id))
        result = self._cancel(keys=[self.keys.action(request.id), self.key],
                              args=[request.id, user_id, repr(to_epoch(self.clock.now()))])
        verdict = result.decode() if isinstance(result, bytes) else str(result)
        if verdict != "cancelled":
            raise ConfirmationError(error_text("cannot_cancel", action_id=request.id, verdict=verdict))

    def _timeline_key(self, request: ActionRequest) -> str:
        return self.keys.timeline(request.incident_id or "-")


def _audited(request: ActionRequest, status: ActionStatus, outcome: str, finished: datetime) -> dict[str, Any]:
    record = ActionRequest.from_hash(request.to_hash())
    record.status, record.outcome, record.finished_at = status, outcome, finished
    return record.audit()
