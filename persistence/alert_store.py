"""Alertmanager alert groups in Redis: the group record, its alerts by fingerprint, its incident link.

Keys come from :class:`persistence.keys.Keys` (``alert_group*``, ``incident_alert_groups``). A group's
notifications are processed under its lock (:meth:`AlertStore.lock`, redis-py's ``Lock``: a token
and a timeout, released only by its holder), so two workers handling two notifications of one group
— Alertmanager sends the next one ``group_interval`` later, a retry can overlap it — never open two
incidents or announce one alert twice. What counts as a change is decided by the pure
:func:`incident.alert_group.alert_changes`; this module only reads and writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from redis import Redis
from redis.lock import Lock

from incident.alert_group import ALERTMANAGER, AlertChanges, AlertGroup
from incident.clock import to_epoch
from incident.timeline import EntryKind
from persistence.keys import Keys
from persistence.timeline import entry_fields

LOCK_SECONDS = 120
"""Longer than one notification takes to process, including opening an incident's channel."""
LOCK_WAIT_SECONDS = 60
"""How long a second notification of the group waits for the first (then its job fails and is retried)."""


class AlertStore:
    """Reads and writes alert groups."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def lock(self, group_id: str) -> Lock:
        """The group's processing lock (use as a context manager; raises ``LockError`` after the wait)."""
        return self.redis.lock(self.keys.alert_group_lock(group_id), timeout=LOCK_SECONDS,
                               blocking_timeout=LOCK_WAIT_SECONDS)

    def group(self, group_id: str) -> AlertGroup | None:
        data = self.redis.hgetall(self.keys.alert_group(group_id))
        return AlertGroup.from_hash(data) if data else None

    def save(self, group: AlertGroup) -> None:
        """Write the whole group record (and list it)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.alert_group(group.id), mapping=group.to_hash())
            pipe.zadd(self.keys.alert_groups(), {group.id: to_epoch(group.first_seen_at)}, nx=True)
            if group.incident_id:
                pipe.sadd(self.keys.incident_alert_groups(group.incident_id), group.id)
            pipe.execute()

    def alerts(self, group_id: str) -> dict[str, dict[str, Any]]:
        """fingerprint → stored record."""
        raw = self.redis.hgetall(self.keys.alert_group_alerts(group_id))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def store_changes(self, group_id: str, changes: AlertChanges, *, incident_id: str | None = None,
                      at: datetime | None = None) -> None:
        """Store the changed alerts and, for a group linked to ``incident_id``, their ``alert_fired`` /
        ``alert_resolved`` entries, in one transaction: a retry after a crash finds both or neither."""
        with self.redis.pipeline(transaction=True) as pipe:
            if changes.store:
                pipe.hset(self.keys.alert_group_alerts(group_id),
                          mapping={fp: json.dumps(record, sort_keys=True) for fp, record in changes.store.items()})
            if incident_id and at is not None:
                stream = self.keys.timeline(incident_id)
                for record in changes.fired:
                    pipe.xadd(stream, entry_fields(EntryKind.ALERT_FIRED, ALERTMANAGER, at, {"group_id": group_id, **record}))
                for record in changes.resolved:
                    pipe.xadd(stream, entry_fields(EntryKind.ALERT_RESOLVED, ALERTMANAGER, at,
                                                   {"group_id": group_id, **record}))
            pipe.execute()

    def link(self, group: AlertGroup, *, actor: str, how: str, at: datetime) -> list[dict[str, Any]]:
        """Save ``group`` (linked to ``group.incident_id``) with an ``alerts_linked`` entry and an ``alert_fired``
        (and ``alert_resolved``) entry for each alert it has so far, in one transaction; returns those alerts."""
        assert group.incident_id, "link() needs the group's incident"
        records = sorted(self.alerts(group.id).values(), key=lambda r: str(r.get("starts_at")))
        stream = self.keys.timeline(group.incident_id)
        firing = sum(1 for r in records if r.get("status") == "firing")
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.alert_group(group.id), mapping=group.to_hash())
            pipe.zadd(self.keys.alert_groups(), {group.id: to_epoch(group.first_seen_at)}, nx=True)
            pipe.sadd(self.keys.incident_alert_groups(group.incident_id), group.id)
            pipe.xadd(stream, entry_fields(EntryKind.ALERTS_LINKED, actor, at, {
                "group_id": group.id, "how": how, "title": group.title, "cluster": group.cluster,
                "group_labels": group.group_labels, "alerts": len(records), "firing": firing}))
            for record in records:
                pipe.xadd(stream, entry_fields(EntryKind.ALERT_FIRED, ALERTMANAGER, at, {"group_id": group.id, **record}))
                if record.get("status") == "resolved":
                    pipe.xadd(stream, entry_fields(EntryKind.ALERT_RESOLVED, ALERTMANAGER, at,
                                                   {"group_id": group.id, **record}))
            pipe.execute()
        return records

    def group_ids(self) -> list[str]:
        """Every group id, first seen first."""
        return [raw.decode() for raw in self.redis.zrange(self.keys.alert_groups(), 0, -1)]

    def iter_groups(self) -> Iterator[AlertGroup]:
        for group_id in self.group_ids():
            group = self.group(group_id)
            if group is not None:
                yield group

    def groups_of(self, incident_id: str) -> list[AlertGroup]:
        """The groups linked to an incident, first seen first."""
        ids = [raw.decode() for raw in self.redis.smembers(self.keys.incident_alert_groups(incident_id))]
        groups = [g for g in (self.group(i) for i in ids) if g is not None]
        return sorted(groups, key=lambda g: g.first_seen_at)

    def unlink(self, incident_id: str, group_id: str) -> None:
        """The group's next episode is not this incident's (its timeline keeps what it had)."""
        self.redis.srem(self.keys.incident_alert_groups(incident_id), group_id)

    def forget_resolved(self, group_id: str) -> None:
        """Drop the resolved alerts of the group's last episode (they stay on its incident's timeline)."""
        resolved = [fp for fp, record in self.alerts(group_id).items() if record.get("status") == "resolved"]
        if resolved:
            self.redis.hdel(self.keys.alert_group_alerts(group_id), *resolved)

    def claim_resolved_prompt(self, incident_id: str) -> bool:
        """True once per "every linked alert resolved" episode (see :meth:`clear_resolved_prompt`)."""
        return bool(self.redis.set(self.keys.alerts_all_resolved_prompt(incident_id), "1", nx=True))

    def clear_resolved_prompt(self, incident_id: str) -> None:
        """An alert fires again: the next time they have all resolved is worth a prompt again."""
        self.redis.delete(self.keys.alerts_all_resolved_prompt(incident_id))
