"""Slack's Web API rate limits, as data, and a sliding-window limiter that enforces them.

Slack applies limits "per API method per workspace per app"; the emulator has one app and one
workspace, so the key is the token and the method (plus the channel for ``chat.postMessage``,
whose special limit is about one message per second per channel, short bursts allowed).
A call over the limit gets HTTP 429 with ``Retry-After`` (whole seconds) and
``{"ok": false, "error": "ratelimited"}``. Tiers name *minimums* ("20+ per minute"), so the
window here is the documented figure per 60 seconds; tests lower limits with
:meth:`RateLimiter.set_limit` instead of sending thousands of requests.

Tiers come from Slack's method reference. ``conversations.history``/``replies`` are Tier 3 for
internal (customer-built) and Marketplace apps; commercially distributed non-Marketplace apps
created after 2025-05-29 get 1 per minute and ``limit`` ≤ 15, which this bot is not.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

TIER_PER_MINUTE: dict[str, int] = {"tier1": 1, "tier2": 20, "tier3": 50, "tier4": 100}
"""Documented per-minute allowance of each Web API tier."""

SPECIAL_PER_MINUTE: dict[str, int] = {
    "chat.postMessage": 60,   # ~1 per second per channel, bursts tolerated
    "chat.getPermalink": 100,  # "Special": generous, modelled as Tier 4
    "auth.test": 100,          # "Special": modelled as Tier 4
}
"""Methods in Slack's "special" tier, with the allowance the emulator applies."""

METHOD_TIERS: dict[str, str] = {
    "auth.test": "special",
    "apps.connections.open": "tier3",  # Slack's method spec; the Python SDK's comment says Tier 1
    "conversations.create": "tier2",
    "conversations.invite": "tier3",
    "conversations.setTopic": "tier2",
    "conversations.setPurpose": "tier2",
    "conversations.info": "tier3",
    "conversations.join": "tier3",
    "conversations.history": "tier3",
    "conversations.replies": "tier3",
    "conversations.members": "tier4",
    "conversations.list": "tier2",
    "chat.postMessage": "special",
    "chat.update": "tier3",
    "chat.postEphemeral": "tier4",
    "chat.getPermalink": "special",
    "pins.add": "tier2",
    "reactions.add": "tier3",
    "users.info": "tier4",
    "usergroups.users.list": "tier2",
    "files.getUploadURLExternal": "tier4",
    "files.completeUploadExternal": "tier4",
    "files.info": "tier4",
    "views.open": "tier4",
    "views.update": "tier4",
    "views.push": "tier4",
}
"""Slack's published tier of every method the emulator implements."""

PER_CHANNEL_METHODS: frozenset[str] = frozenset({"chat.postMessage"})
"""Methods whose limit is counted per channel rather than per workspace."""


def default_limit(method: str) -> int:
    """Requests per window Slack grants ``method`` (Tier 3 for anything not listed)."""
    tier = METHOD_TIERS.get(method, "tier3")
    if tier == "special":
        return SPECIAL_PER_MINUTE.get(method, TIER_PER_MINUTE["tier4"])
    return TIER_PER_MINUTE[tier]


@dataclass(frozen=True)
class RateDecision:
    """Outcome of one admission check: allowed, or refused with a ``Retry-After``."""

    allowed: bool
    retry_after: int = 0


class RateLimiter:
    """Sliding-window counters per (token, method[, channel]); thread-safe."""

    def __init__(self, *, window_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_seconds = window_seconds
        """Length of the counting window (Slack's limits are per minute)."""
        self.enabled = True
        """Turn enforcement off entirely (fault injection still applies)."""
        self._clock = clock
        self._overrides: dict[str, int] = {}
        self._hits: dict[tuple[str, str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def set_limit(self, method: str, per_window: int | None) -> None:
        """Override ``method``'s allowance per window (``None`` restores Slack's figure)."""
        with self._lock:
            if per_window is None:
                self._overrides.pop(method, None)
            else:
                self._overrides[method] = max(0, int(per_window))

    def limit(self, method: str) -> int:
        """The allowance in force for ``method``."""
        with self._lock:
            return self._overrides.get(method, default_limit(method))

    def reset(self) -> None:
        """Forget every counted request."""
        with self._lock:
            self._hits.clear()

    def admit(self, token: str, method: str, channel: str | None = None) -> RateDecision:
        """Count one request if it is within the limit, else say how long to wait."""
        if not self.enabled:
            return RateDecision(True)
        key = (token, method, (channel or "") if method in PER_CHANNEL_METHODS else "")
        now = self._clock()
        with self._lock:
            allowance = self._overrides.get(method, default_limit(method))
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_seconds:
                hits.popleft()
            if len(hits) >= allowance:
                oldest = hits[0] if hits else now
                wait = oldest + self.window_seconds - now
                return RateDecision(False, max(1, math.ceil(wait)))
            hits.append(now)
            return RateDecision(True)
