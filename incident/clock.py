"""Time, injectable: the core never calls ``datetime.now`` directly, so tests can control it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def to_epoch(moment: datetime) -> float:
    """Seconds since the epoch of an aware datetime."""
    return moment.timestamp()


def from_epoch(seconds: float) -> datetime:
    """Aware UTC datetime from seconds since the epoch."""
    return datetime.fromtimestamp(seconds, UTC)


def parse_moment(value: Any) -> datetime | None:
    """An aware datetime from what timeline data holds: epoch seconds (number or string) or ISO 8601.

    ``None``, empty strings, booleans, naive or unparsable values give ``None``.
    """
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        return from_epoch(float(value))
    except (TypeError, ValueError):
        pass
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else None
