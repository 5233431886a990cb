"""Fault injection: make the next calls to a Web API method fail the way Slack can fail.

Faults are queued per method and consumed in order, one per call: an ``ok: false`` error code,
an HTTP 429 with ``Retry-After``, or an HTTP 5xx. Delays are standing (every call to the method
sleeps until the delay is cleared) so timeouts and slow-Slack behaviour can be exercised.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """One injected failure.

    ``kind`` is ``"error"`` (HTTP 200, ``ok: false``, ``error`` = ``code``), ``"ratelimited"``
    (HTTP 429, ``Retry-After: retry_after``), ``"server_error"`` (HTTP ``status``, nothing done) or
    ``"server_error_after"`` (the call took effect, but the answer is HTTP ``status`` — the ambiguous
    failure a client must not answer by blindly repeating a post).
    """

    kind: str
    code: str = ""
    retry_after: int = 1
    status: int = 500


class FaultInjector:
    """Per-method queues of faults plus standing delays; thread-safe."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = {}
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, method: str, fault: Fault, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` calls to ``method`` (after those already queued)."""
        with self._lock:
            self._queues.setdefault(method, deque()).extend([fault] * max(0, times))

    def take(self, method: str) -> Fault | None:
        """The fault for this call to ``method``, if one is queued."""
        with self._lock:
            queue = self._queues.get(method)
            return queue.popleft() if queue else None

    def set_delay(self, method: str, seconds: float) -> None:
        """Make every call to ``method`` take ``seconds`` longer (0 clears it)."""
        with self._lock:
            if seconds > 0:
                self._delays[method] = seconds
            else:
                self._delays.pop(method, None)

    def delay(self, method: str) -> float:
        """The standing delay of ``method`` (0 when none)."""
        with self._lock:
            return self._delays.get(method, 0.0)

    def pending(self, method: str) -> int:
        """How many queued faults ``method`` still has."""
        with self._lock:
            return len(self._queues.get(method, ()))

    def clear(self) -> None:
        """Drop every queued fault and delay."""
        with self._lock:
            self._queues.clear()
            self._delays.clear()
