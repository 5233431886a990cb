"""The incident: its fields, severities, statuses and the state machine between them.

Statuses: ``open`` (responding) → ``mitigated`` (impact stopped, cause not fixed) → ``resolved``.
A mitigated incident can regress to ``open``; a resolved one can be reopened. Everything else
is refused with :class:`InvalidTransition`, so the timeline always tells a coherent story.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum

from incident.clock import from_epoch, to_epoch
from incident.errors import InvalidTransition, error_text

SEVERITIES: tuple[str, ...] = ("sev1", "sev2", "sev3")
DEFAULT_SEVERITY = "sev2"


class Status(StrEnum):
    """Where an incident stands."""

    OPEN = "open"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.MITIGATED, Status.RESOLVED}),
    Status.MITIGATED: frozenset({Status.OPEN, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.OPEN}),
}


def check_transition(current: Status, target: Status) -> None:
    """Raise InvalidTransition unless ``current → target`` is allowed."""
    if target == current:
        raise InvalidTransition(error_text("already_in_status", status=current.value))
    if target not in ALLOWED_TRANSITIONS[current]:
        allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[current])
        raise InvalidTransition(error_text("transition_not_allowed", current=current.value, target=target.value),
                                hint=error_text("transition_not_allowed_hint", current=current.value, allowed=allowed))


@dataclass
class Incident:
    """One incident as stored in Redis (a hash of strings)."""

    id: str
    title: str
    severity: str
    channel_id: str
    channel_name: str
    opened_by: str
    opened_at: datetime
    status: Status = Status.OPEN
    commander: str | None = None
    comms: str | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    header_ts: str | None = None
    stakeholder_ts: str | None = None
    customer_facing: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    cluster: str | None = None
    """The cluster the incident belongs to (chosen at open); ``None`` on incidents older than the registry: the default."""

    @property
    def is_active(self) -> bool:
        """Open or mitigated: reminders and escalations still apply."""
        return self.status != Status.RESOLVED

    def to_hash(self) -> dict[str, str]:
        """Flat string mapping for a Redis hash (``None`` fields omitted)."""
        raw = asdict(self)
        raw.pop("extra")
        out: dict[str, str] = {}
        for key, value in raw.items():
            if value is None:
                continue
            if isinstance(value, datetime):
                out[key] = repr(to_epoch(value))
            elif isinstance(value, bool):
                out[key] = "1" if value else "0"
            else:
                out[key] = str(value)
        out.update({f"x_{k}": v for k, v in self.extra.items()})
        return out

    @classmethod
    def from_hash(cls, data: dict[bytes, bytes] | dict[str, str]) -> "Incident":
        """Inverse of :meth:`to_hash`."""
        text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in data.items()}

        def moment(name: str) -> datetime | None:
            return from_epoch(float(text[name])) if text.get(name) else None

        opened_at = moment("opened_at")
        assert opened_at is not None, "stored incident without opened_at"
        return cls(
            id=text["id"],
            title=text["title"],
            severity=text["severity"],
            channel_id=text["channel_id"],
            channel_name=text["channel_name"],
            opened_by=text["opened_by"],
            opened_at=opened_at,
            status=Status(text.get("status", "open")),
            commander=text.get("commander"),
            comms=text.get("comms"),
            mitigated_at=moment("mitigated_at"),
            resolved_at=moment("resolved_at"),
            header_ts=text.get("header_ts"),
            stakeholder_ts=text.get("stakeholder_ts"),
            customer_facing=text.get("customer_facing") == "1",
            extra={k[2:]: v for k, v in text.items() if k.startswith("x_")},
            cluster=text.get("cluster"),
        )
