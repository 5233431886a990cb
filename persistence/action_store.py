"""Risky action requests in Redis: one hash per request, moved through its states by atomic scripts.

:class:`ActionStore` creates requests (ids ``A1``, ``A2``, …), reads them, and moves them: ``preparing`` →
``awaiting_confirmation`` (with the dry-run and the deadline) or ``rejected``; a confirm click, which is
one Lua script (:data:`persistence.lua.ACTION_CONFIRM`), so a click after expiry, a second click by the
same person or a click on a request that is no longer waiting changes nothing and says why
(:class:`ConfirmationError`); once enough people confirmed, the same script queues the request on the
cluster's FIFO (:mod:`persistence.action_queue` runs it). What a request *is* lives in
:mod:`incident.actions`. Used by :mod:`service.actions` and :mod:`service.action_requests`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from redis import Redis

from incident.actions import ActionRequest, ActionStatus, control_plane_failure
from incident.clock import Clock, SystemClock, to_epoch
from incident.errors import ConfirmationError, error_text
from persistence import lua
from persistence.keys import Keys
from persistence.timeline import Timeline

EFFECT_TTL_SECONDS = 24 * 3600
"""How long a command's or click's request is remembered for its replay (a replay comes seconds after a crash)."""


@dataclass(frozen=True)
class Confirmation:
    """The result of a confirm click that changed something."""

    request: ActionRequest
    queued: bool
    position: int | None = None
    """1-based position in the cluster's FIFO (1 = next or running) when ``queued``."""


class ActionStore:
    """Creates, reads and moves action requests (not the running part: see :mod:`persistence.action_queue`)."""

    def __init__(self, redis: Redis, keys: Keys | None = None, clock: Clock | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.clock = clock or SystemClock()
        self._confirm = redis.register_script(lua.ACTION_CONFIRM)
        self._expire = redis.register_script(lua.ACTION_EXPIRE)
        self._set_if = redis.register_script(lua.ACTION_SET_IF_STATUS)
        self._new = redis.register_script(lua.ACTION_NEW)

    def new(self, *, cluster: str, kind: str, target: str, requested_by: str, channel_id: str,
            incident_id: str | None, params: dict[str, Any] | None = None,
            second_confirmer_for_destructive: bool = False) -> ActionRequest:
        """Store a new request in ``preparing`` and return it (ids ``A1``, ``A2``, …)."""
        request = self._build(cluster=cluster, kind=kind, target=target, requested_by=requested_by,
                              channel_id=channel_id, incident_id=incident_id, params=params,
                              second_confirmer_for_destructive=second_confirmer_for_destructive)
        self.redis.hset(self.keys.action(request.id), mapping=request.to_hash())
        return request

    def new_once(self, dedupe: str, *, cluster: str, kind: str, target: str, requested_by: str, channel_id: str,
                 incident_id: str | None, params: dict[str, Any] | None = None,
                 second_confirmer_for_destructive: bool = False) -> tuple[ActionRequest, bool]:
        """:meth:`new` for the effect ``dedupe`` (``service.inbox.effect_id``): returns the request and whether
        it is new. When that effect already stored one — the replay of a command or click whose first run
        died — that request comes back, atomically with the check (a replay spends one id number)."""
        request = self._build(cluster=cluster, kind=kind, target=target, requested_by=requested_by,
                              channel_id=channel_id, incident_id=incident_id, params=params,
                              second_confirmer_for_destructive=second_confirmer_for_destructive)
        fields = [part for pair in request.to_hash().items() for part in pair]
        raw = self._new(keys=[self.keys.action(request.id), self.keys.action_effect(dedupe)],
                        args=[request.id, EFFECT_TTL_SECONDS, *fields])
        owner = raw.decode() if isinstance(raw, bytes) else str(raw)
        return (request, True) if owner == request.id else (self.get(owner), False)

    def _build(self, *, cluster: str, kind: str, target: str, requested_by: str, channel_id: str,
               incident_id: str | None, params: dict[str, Any] | None,
               second_confirmer_for_destructive: bool) -> ActionRequest:
        number = self.redis.incr(self.keys.action_seq())
        request = ActionRequest(id=f"A{number}", cluster=cluster, kind=kind, target=target,
                                requested_by=requested_by, channel_id=channel_id, requested_at=self.clock.now(),
                                incident_id=incident_id, params=dict(params or {}))
        if second_confirmer_for_destructive and request.destructive:
            request.confirmers_needed = 2
        return request

    def get(self, action_id: str) -> ActionRequest:
        data = self.redis.hgetall(self.keys.action(action_id))
        if not data:
            raise ConfirmationError(error_text("no_action", action_id=action_id[:20]),
                                    hint=error_text("no_action_hint"))
        return ActionRequest.from_hash(data)

    def find(self, action_id: str) -> ActionRequest | None:
        data = self.redis.hgetall(self.keys.action(action_id))
        return ActionRequest.from_hash(data) if data else None

    def set_fields(self, action_id: str, fields: dict[str, str]) -> None:
        """Bookkeeping with no state meaning (the confirmation message's ts)."""
        self.redis.hset(self.keys.action(action_id), mapping=fields)

    def _move(self, action_id: str, expected: ActionStatus, fields: dict[str, str]) -> bool:
        args: list[str] = [expected.value]
        for name, value in fields.items():
            args += [name, value]
        return bool(self._set_if(keys=[self.keys.action(action_id)], args=args))

    def prepared(self, action_id: str, *, dry_run: str, guard: str, ttl_seconds: int) -> ActionRequest:
        """``preparing`` → ``awaiting_confirmation`` with the dry-run summary and the deadline."""
        deadline = self.clock.now() + timedelta(seconds=ttl_seconds)
        if not self._move(action_id, ActionStatus.PREPARING, {
            "status": ActionStatus.AWAITING_CONFIRMATION.value, "dry_run": dry_run, "guard": guard,
            "confirm_deadline": repr(to_epoch(deadline)),
        }):
            raise ConfirmationError(error_text("not_preparing", action_id=action_id, status=self.get(action_id).status))
        return self.get(action_id)

    def reject(self, action_id: str, reason: str) -> bool:
        """``preparing`` → ``rejected``: validation or dry-run said no."""
        return self._move(action_id, ActionStatus.PREPARING, {
            "status": ActionStatus.REJECTED.value, "outcome": reason, "finished_at": repr(to_epoch(self.clock.now())),
        })

    def expire(self, action_id: str) -> bool:
        """``awaiting_confirmation`` → ``expired`` once the deadline has passed; false otherwise."""
        return bool(self._expire(keys=[self.keys.action(action_id)], args=[repr(to_epoch(self.clock.now()))]))

    def confirm(self, action_id: str, user_id: str, *, proceed_anyway: bool = False) -> Confirmation:
        """Record ``user_id``'s confirmation, atomically; queue the action once enough people confirmed.

        Raises :class:`ConfirmationError` (nothing changed) when the request is unknown, not waiting
        for confirmation, expired, already confirmed by this person, or held by the recovery-order
        guard without ``proceed_anyway``. The caller checks that the user is allowed at all.
        """
        now = repr(to_epoch(self.clock.now()))
        cluster = self._cluster_of(action_id)
        raw = self._confirm(keys=[self.keys.action(action_id), self.keys.action_queue(cluster),
                                  self.keys.action_tickets(cluster)],
                            args=[user_id, now, "1" if proceed_anyway else "0"])
        result = [part.decode() if isinstance(part, bytes) else str(part) for part in raw]
        verdict = result[0]
        if verdict == "queued":
            return Confirmation(self.get(action_id), queued=True, position=int(result[1]))
        if verdict == "more":
            return Confirmation(self.get(action_id), queued=False)
        raise _confirm_refusal(action_id, user_id, result)

    def _cluster_of(self, action_id: str) -> str:
        cluster = self.redis.hget(self.keys.action(action_id), "cluster")
        return cluster.decode() if cluster else "-"


def _confirm_refusal(action_id: str, user_id: str, result: list[str]) -> ConfirmationError:
    verdict = result[0]
    if verdict == "missing":
        return ConfirmationError(error_text("confirm_missing", action_id=action_id))
    if verdict == "expired":
        return ConfirmationError(error_text("confirm_expired", action_id=action_id),
                                 hint=error_text("confirm_expired_hint"))
    if verdict == "twice":
        return ConfirmationError(error_text("confirm_twice", action_id=action_id),
                                 hint=error_text("confirm_twice_hint"))
    if verdict == "guard":
        return ConfirmationError(error_text("confirm_guard", action_id=action_id, reason=result[1]),
                                 hint=error_text("confirm_guard_hint"))
    status = result[1] if len(result) > 1 else "unknown"
    confirmers = [user for user in (result[2] if len(result) > 2 else "").split(",") if user]
    return ConfirmationError(error_text("confirm_too_late", action_id=action_id, status=status, confirmers=confirmers))


def latest_assessment_guard(redis: Redis, keys: Keys, incident_id: str | None) -> str:
    """The recovery-order guard reason from the incident's latest ``assessment`` entry (``""``: none)."""
    if not incident_id:
        return ""
    entry = Timeline(redis, incident_id, keys).latest("assessment")
    return control_plane_failure(entry.data) if entry is not None else ""
