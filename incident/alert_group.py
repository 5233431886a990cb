"""An Alertmanager alert group as the bot keeps it, and what a notification changes in it (pure).

One group per ``groupKey`` (:func:`incident.alert_payload.group_id`): its state (``triage`` — a
message asks a person; ``incident`` — linked to an incident, its own or one it was attached to;
``dismissed``; ``recorded`` — kept, nobody told), the cluster label's value, the severity and title
the rules gave it, and its alerts by fingerprint with their last status. A state holds for one
*episode*: when everything had resolved and something fires again, the group is decided anew
(``service.alerts``), and its ``episode`` counts up.

:func:`alert_changes` is the deduplication: given the stored alerts and a notification's, which
alerts newly fire and which newly resolve. Alertmanager re-sends a group's whole alert list on
every notification (each ``group_interval`` while something changed, each ``repeat_interval``
anyway) and retries failed deliveries, and two workers may process two notifications of a group in
either order, so:

- an alert already firing with the same ``startsAt`` is a repeat, never a second ``alert_fired``;
- a resolved alert fires again only with a later ``startsAt`` (Alertmanager gives a re-fired alert a
  new one), so a late retry of an older "firing" notification cannot undo a resolve;
- an alert first seen resolved is stored but announces nothing (it never fired here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from incident.alert_payload import Alert
from incident.clock import from_epoch, to_epoch


ALERTMANAGER = "alertmanager"
"""The actor of what Alertmanager did (an incident it opened, its alerts' entries): not a Slack user."""


class GroupState(StrEnum):
    TRIAGE = "triage"
    INCIDENT = "incident"
    DISMISSED = "dismissed"
    RECORDED = "recorded"


@dataclass
class AlertGroup:
    """One alert group (a Redis hash; its alerts are a second hash, fingerprint → record)."""

    id: str
    group_key: str
    state: GroupState
    first_seen_at: datetime
    severity: str
    title: str
    cluster: str = ""
    """The value of the rules' ``cluster_label`` (empty when the alerts carry none)."""
    receiver: str = ""
    group_labels: dict[str, str] = field(default_factory=dict)
    incident_id: str | None = None
    triage_channel: str | None = None
    triage_post_id: str | None = None
    """The outbox post id of the triage message (its ts is in the click that answers it)."""
    decided_by: str | None = None
    episode: int = 1
    """Counts the group's episodes: its alerts all resolved and later fired again (see ``service.alerts``)."""

    def to_hash(self) -> dict[str, str]:
        out = {"id": self.id, "group_key": self.group_key, "state": self.state.value,
               "first_seen_at": repr(to_epoch(self.first_seen_at)), "severity": self.severity, "title": self.title,
               "cluster": self.cluster, "receiver": self.receiver, "group_labels": json.dumps(self.group_labels),
               "episode": str(self.episode)}
        for name in ("incident_id", "triage_channel", "triage_post_id", "decided_by"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out

    @classmethod
    def from_hash(cls, data: dict[bytes, bytes] | dict[str, str]) -> "AlertGroup":
        text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in data.items()}
        return cls(id=text["id"], group_key=text["group_key"], state=GroupState(text["state"]),
                   first_seen_at=from_epoch(float(text["first_seen_at"])), severity=text["severity"],
                   title=text["title"], cluster=text.get("cluster", ""), receiver=text.get("receiver", ""),
                   group_labels=json.loads(text.get("group_labels") or "{}"), incident_id=text.get("incident_id"),
                   triage_channel=text.get("triage_channel"), triage_post_id=text.get("triage_post_id"),
                   decided_by=text.get("decided_by"), episode=int(text.get("episode") or 1))


@dataclass(frozen=True)
class AlertChanges:
    """What one notification changed: alerts that newly fire, alerts that newly resolved, every record to store."""

    fired: tuple[dict[str, Any], ...]
    resolved: tuple[dict[str, Any], ...]
    store: dict[str, dict[str, Any]]
    """fingerprint → the record to write (new or changed alerts only)."""

    @property
    def empty(self) -> bool:
        return not self.fired and not self.resolved


def alert_changes(stored: dict[str, dict[str, Any]], alerts: list[Alert]) -> AlertChanges:
    """Compare a notification's ``alerts`` with the ``stored`` records (fingerprint → record)."""
    fired: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    store: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        record = alert.record()
        before = stored.get(alert.fingerprint)
        if before is None:
            store[alert.fingerprint] = record
            if alert.firing:
                fired.append(record)
            continue
        earlier_start = datetime.fromisoformat(str(before["starts_at"]))
        if alert.firing:
            if before["status"] == "resolved" and alert.starts_at > earlier_start:
                store[alert.fingerprint] = record
                fired.append(record)
            elif before["status"] == "firing" and record != before and alert.starts_at >= earlier_start:
                store[alert.fingerprint] = record  # annotations changed: kept, not announced
        elif before["status"] == "firing" and alert.starts_at >= earlier_start:
            store[alert.fingerprint] = record
            resolved.append(record)
    return AlertChanges(tuple(fired), tuple(resolved), store)


def still_firing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records whose alert fires, oldest first."""
    return sorted((r for r in records if r.get("status") == "firing"), key=lambda r: str(r.get("starts_at")))
