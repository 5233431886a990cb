"""One way to wait in the sandbox, the tests and the benchmarks: poll a condition until it holds or time runs out.

Tests wait for the thing they need (a message in the right channel, a job's outcome), never for a fixed
time; this is the one poll loop behind those waits. ``error`` decides what a timeout raises: tests use
``AssertionError`` (a failure, not an error), the sandbox its own error class naming what it waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05,
         error: type[Exception] = AssertionError) -> T:
    """``condition()``'s first truthy value, polled every ``interval`` s; ``error`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise error(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
