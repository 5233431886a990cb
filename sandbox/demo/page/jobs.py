"""Slow demo-panel work (injecting or undoing a scenario, starting a drill) off the HTTP threads.

Breaking the cluster takes seconds to tens of seconds; the page must stay responsive meanwhile and
show what is going on. :class:`JobRunner` runs submitted callables one at a time, in order, on one
daemon thread — one change to the cluster at a time, as a person at the panel would expect — and
keeps a short history of :class:`Job` records that the page polls.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

HISTORY = 20
"""How many finished jobs the page still lists."""


@dataclass
class Job:
    """One piece of panel work and how it went."""

    id: int
    title: str
    state: str = "queued"
    """``queued``, ``running``, ``done`` or ``failed``."""
    message: str = ""
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The record the page shows (seconds taken included once finished)."""
        body = asdict(self)
        if self.started_at is not None:
            body["seconds"] = round((self.finished_at or time.time()) - self.started_at, 1)
        return body


class JobRunner:
    """Runs jobs sequentially on one daemon thread; failures are recorded, never raised."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self._queue: queue.Queue[tuple[Job, Callable[[], str]]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, title: str, work: Callable[[], str]) -> Job:
        """Queue ``work`` (returns a message for the page); returns its record."""
        job = Job(next(self._ids), title, submitted_at=time.time())
        with self._lock:
            self._jobs.append(job)
            del self._jobs[:-HISTORY]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="demo-panel", daemon=True)
                self._thread.start()
        self._queue.put((job, work))
        return job

    def snapshot(self) -> list[dict[str, Any]]:
        """Every remembered job, newest first."""
        with self._lock:
            return [job.to_json() for job in reversed(self._jobs)]

    @property
    def busy(self) -> bool:
        """Whether a job is queued or running."""
        with self._lock:
            return any(job.state in ("queued", "running") for job in self._jobs)

    def _run(self) -> None:
        while True:
            job, work = self._queue.get()
            with self._lock:
                job.state, job.started_at = "running", time.time()
            try:
                message, state = work(), "done"
            except Exception as error:  # noqa: BLE001 - shown on the page, logged with its traceback
                log.exception("demo panel job %r failed", job.title)
                message, state = f"{type(error).__name__}: {error}", "failed"
            with self._lock:
                job.state, job.message, job.finished_at = state, message, time.time()
