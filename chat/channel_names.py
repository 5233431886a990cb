"""Slack channel names for incidents: ``<prefix>-<yyyymmdd>-<slug>``, valid by Slack's rules.

Slack: lowercase letters, digits, hyphens and underscores, at most 80 characters.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

MAX_CHANNEL_NAME = 80
_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")


def slugify(title: str) -> str:
    """``API is DOWN!`` → ``api-is-down`` (accents folded, everything else a hyphen)."""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return _NOT_ALLOWED.sub("-", folded.lower()).strip("-")


def incident_channel_name(prefix: str, opened: datetime, title: str, suffix: int | None = None) -> str:
    """The channel name for an incident; ``suffix`` (2, 3, …) is added after ``name_taken``."""
    head = f"{prefix}-{opened:%Y%m%d}"
    tail = f"-{suffix}" if suffix else ""
    room = MAX_CHANNEL_NAME - len(head) - len(tail) - 1
    slug = slugify(title)[:room].strip("-") or "incident"
    return f"{head}-{slug}{tail}"
