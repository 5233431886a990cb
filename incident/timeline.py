"""One entry of an incident's append-only timeline: what happened, who did it, when, and its facts.

The domain reads entries (cadence, post-mortem, drill score, resolve check); where they are stored is
:mod:`persistence.timeline` (a Redis stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TimelineEntry:
    """One timeline entry."""

    id: str
    kind: str
    actor: str
    at: datetime
    data: dict[str, Any]
