"""Incident state in Redis: create (idempotently), look up, change — each change with its timeline entry.

A state change and its timeline entry are written in one Redis transaction, so the timeline can
never miss a change nor record one that did not happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from redis import Redis
from redis.exceptions import WatchError

from incident.clock import Clock, SystemClock, to_epoch
from incident.errors import IncidentNotFound, error_text
from persistence.keys import Keys
from incident.model import SEVERITIES, Incident, Status, check_transition
from persistence.timeline import Timeline, entry_fields
from incident.timeline import EntryKind

OPEN_CLAIM_TTL_SECONDS = 600
PENDING = "pending"


class IncidentStore:
    """Reads and writes incidents and their timelines."""

    def __init__(self, redis: Redis, keys: Keys | None = None, clock: Clock | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.clock = clock or SystemClock()

    # --- creation ------------------------------------------------------------------------
    def claim_open(self, dedupe_key: str, token: str | None = None) -> str | None:
        """Reserve an ``incident open`` request; returns ``None`` if this call won the claim,
        else what the earlier request left (``"pending"`` or the incident id).

        ``token`` (a replayable request's identity): a pending claim holding the same token is this
        request's own, left by its first run (which died): it is ``None`` too, and the open resumes."""
        key = self.keys.open_request(dedupe_key)
        mine = f"{PENDING}:{token}" if token else PENDING
        if self.redis.set(key, mine, nx=True, ex=OPEN_CLAIM_TTL_SECONDS):
            return None
        value = (self.redis.get(key) or b"").decode() or PENDING
        if token and value == mine:
            return None
        return PENDING if value.startswith(PENDING) else value

    def release_open_claim(self, dedupe_key: str) -> None:
        """Forget a claim whose opening failed, so the user can try again."""
        self.redis.delete(self.keys.open_request(dedupe_key))

    def next_id(self, now: datetime | None = None) -> str:
        """A new incident id such as ``20261123-003`` (sequence per day)."""
        day = (now or self.clock.now()).strftime("%Y%m%d")
        sequence = self.redis.incr(self.keys.incident_sequence(day))
        return f"{day}-{sequence:03d}"

    def create(self, incident: Incident, *, dedupe_key: str | None = None) -> Incident:
        """Store a new incident with its ``opened`` timeline entry, atomically."""
        timeline = self.timeline(incident.id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.incident(incident.id), mapping=incident.to_hash())
            pipe.zadd(self.keys.incident_ids(), {incident.id: to_epoch(incident.opened_at)})
            pipe.hset(self.keys.incident_by_channel(), incident.channel_id, incident.id)
            _queue_entry(pipe, timeline, EntryKind.OPENED, incident.opened_by, incident.opened_at, {
                "title": incident.title, "severity": incident.severity, "channel_id": incident.channel_id,
                "channel_name": incident.channel_name,
            })
            if dedupe_key:
                pipe.set(self.keys.open_request(dedupe_key), incident.id, ex=OPEN_CLAIM_TTL_SECONDS)
            pipe.execute()
        return incident

    # --- reading -------------------------------------------------------------------------
    def get(self, incident_id: str) -> Incident:
        """The incident with this id; IncidentNotFound otherwise."""
        data = self.redis.hgetall(self.keys.incident(incident_id))
        if not data:
            raise IncidentNotFound(error_text("incident_not_found", incident_id=incident_id),
                                   hint=error_text("incident_not_found_hint"))
        return Incident.from_hash(data)

    def find_by_channel(self, channel_id: str) -> Incident | None:
        """The incident whose channel this is, if any."""
        incident_id = self.redis.hget(self.keys.incident_by_channel(), channel_id)
        return self.get(incident_id.decode()) if incident_id else None

    def iter_all(self) -> Iterator[Incident]:
        """Every incident, oldest first."""
        for raw in self.redis.zrange(self.keys.incident_ids(), 0, -1):
            data = self.redis.hgetall(self.keys.incident(raw.decode()))
            if data:
                yield Incident.from_hash(data)

    def active(self) -> list[Incident]:
        """Incidents not yet resolved."""
        return [incident for incident in self.iter_all() if incident.is_active]

    def timeline(self, incident_id: str) -> Timeline:
        """The timeline of one incident."""
        return Timeline(self.redis, incident_id, self.keys)

    # --- changes -------------------------------------------------------------------------
    def transition(self, incident_id: str, target: Status, actor: str, data: dict[str, Any] | None = None, *,
                   dedupe: str | None = None) -> Incident:
        """Move to ``target`` if the state machine allows it; records ``status_changed``."""

        def change(incident: Incident, now: datetime) -> tuple[dict[str, str], dict[str, Any]]:
            check_transition(incident.status, target)
            fields = {"status": target.value}
            if target == Status.MITIGATED:
                fields["mitigated_at"] = repr(to_epoch(now))
            if target == Status.RESOLVED:
                fields["resolved_at"] = repr(to_epoch(now))
            return fields, {"from": incident.status.value, "to": target.value, **(data or {})}

        return self._change(incident_id, EntryKind.STATUS_CHANGED, actor, change, dedupe)

    def set_severity(self, incident_id: str, severity: str, actor: str, *, dedupe: str | None = None) -> Incident:
        """Change the severity; records ``severity_changed``."""
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")

        def change(incident: Incident, now: datetime) -> tuple[dict[str, str], dict[str, Any]]:
            return {"severity": severity}, {"from": incident.severity, "to": severity}

        return self._change(incident_id, EntryKind.SEVERITY_CHANGED, actor, change, dedupe)

    def set_role(self, incident_id: str, role: str, user_id: str, actor: str, *, dedupe: str | None = None) -> Incident:
        """Assign ``commander`` or ``comms``; records ``role_assigned``."""
        if role not in ("commander", "comms"):
            raise ValueError(f"unknown role {role!r}")

        def change(incident: Incident, now: datetime) -> tuple[dict[str, str], dict[str, Any]]:
            return {role: user_id}, {"role": role, "user": user_id, "previous": getattr(incident, role)}

        return self._change(incident_id, EntryKind.ROLE_ASSIGNED, actor, change, dedupe)

    def set_impact(self, incident_id: str, actor: str, *, customer_facing: bool | None = None,
                   business_pressure: bool | None = None, dedupe: str | None = None) -> Incident:
        """Mark the incident customer-facing (or not) and business pressure on (or off); records ``impact_changed``.

        Both feed the escalation thresholds; customer-facing time is the post-mortem's business impact.
        """

        def change(incident: Incident, now: datetime) -> tuple[dict[str, str], dict[str, Any]]:
            fields: dict[str, str] = {}
            data: dict[str, Any] = {}
            if customer_facing is not None:
                fields["customer_facing"] = "1" if customer_facing else "0"
                data["customer_facing"] = customer_facing
            if business_pressure is not None:
                fields["x_business_pressure_since"] = repr(to_epoch(now)) if business_pressure else ""
                data["business_pressure"] = business_pressure
            return fields, data

        return self._change(incident_id, EntryKind.IMPACT_CHANGED, actor, change, dedupe)

    def set_fields(self, incident_id: str, fields: dict[str, str]) -> None:
        """Bookkeeping fields with no timeline meaning (message timestamps of the header etc.)."""
        self.redis.hset(self.keys.incident(incident_id), mapping=fields)

    def _change(self, incident_id: str, kind: str, actor: str, change: Any, dedupe: str | None = None) -> Incident:
        """Apply ``change`` with its timeline entry; with ``dedupe`` (a replayed command's identity of this
        change) only once: a second call finds the identity recorded with the first and changes nothing."""
        key = self.keys.incident(incident_id)
        seen = self.keys.timeline_seen(incident_id)
        timeline = self.timeline(incident_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, seen)
                    if dedupe and pipe.sismember(seen, dedupe):
                        pipe.reset()
                        break
                    data = pipe.hgetall(key)
                    if not data:
                        raise IncidentNotFound(error_text("incident_not_found", incident_id=incident_id))
                    now = self.clock.now()
                    fields, entry = change(Incident.from_hash(data), now)
                    pipe.multi()
                    pipe.hset(key, mapping=fields)
                    _queue_entry(pipe, timeline, kind, actor, now, entry)
                    if dedupe:
                        pipe.sadd(seen, dedupe)
                    pipe.execute()
                    break
                except WatchError:
                    continue
        return self.get(incident_id)


def _queue_entry(pipe: Any, timeline: Timeline, kind: str, actor: str, at: datetime, data: dict[str, Any]) -> None:
    pipe.xadd(timeline.stream_key, entry_fields(kind, actor, at, data))
