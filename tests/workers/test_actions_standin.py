"""Support for the action tests: stand-in runtimes and real worker processes.

Real worker processes import the runtimes by path (``tests.workers.test_actions_standin:…``), so
everything they do lands in Redis where the test reads it. ``recording_runtime`` has a stand-in
executor (no Kubernetes: the queue tests are about serialization, leases and state);
``kube_recording_runtime`` has the real :class:`kube.actions.KubeExecutor` against the test bed.
Both record Slack messages in Redis instead of posting them. No tests here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from incident.actions import ActionRequest
from incident.errors import ObjectNotFound
from incident.settings import Settings
from tests.fixtures.workers import WorkerProcesses, settings_environment
from incident.actions import Outcome
from service.runtime import ActionRuntime, Guard, Progress
from sandbox.waiting import poll

RUNTIME = "tests.workers.test_actions_standin:recording_runtime"
KUBE_RUNTIME = "tests.workers.test_actions_standin:kube_recording_runtime"
REPO = Path(__file__).resolve().parents[2]
EXECUTIONS = "test:executions"
RUNNING = "test:running"
OVERLAPS = "test:overlaps"
NOTES = "test:notes"


class RecordingExecutor:
    """Sleeps ``params["sleep"]`` seconds checking the guard; ``params["hang"]`` never returns."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def prepare(self, request: ActionRequest) -> str:
        if request.target.startswith("missing"):
            raise ObjectNotFound(f"Node {request.target} does not exist.")
        return f"stand-in dry-run of {request.description}"

    def execute(self, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
        guard()
        if self.redis.incr(RUNNING) > 1:
            self.redis.rpush(OVERLAPS, request.id)
        start = time.time()
        self.redis.rpush(EXECUTIONS, json.dumps({"id": request.id, "event": "start", "at": start, "pid": os.getpid()}))
        try:
            if request.params.get("hang"):
                while True:
                    time.sleep(0.05)
            deadline = start + float(request.params.get("sleep", 0.05))
            while time.time() < deadline:
                guard()
                progress(f"working on {request.target}")
                time.sleep(0.01)
            if request.params.get("fail"):
                return Outcome(False, "stand-in failure")
            return Outcome(True, f"stand-in did {request.description}")
        finally:
            self.redis.decr(RUNNING)
            self.redis.rpush(EXECUTIONS, json.dumps({"id": request.id, "event": "end", "at": time.time()}))


class RecordingNotifier:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def _note(self, **fields: Any) -> str:
        number = self.redis.rpush(NOTES, json.dumps(fields, default=str))
        return f"1700000000.{number:06d}"

    def post_message(self, channel: str, text: str, blocks: Any = None, thread_ts: str | None = None) -> str:
        return self._note(method="post", channel=channel, text=text, thread_ts=thread_ts)

    def update_message(self, channel: str, ts: str, text: str, blocks: Any = None) -> None:
        self._note(method="update", channel=channel, ts=ts, text=text,
                   blocks=[b.to_dict() if hasattr(b, "to_dict") else b for b in blocks or []])

    def post_ephemeral(self, channel: str, user: str, text: str, blocks: Any = None) -> None:
        self._note(method="ephemeral", channel=channel, user=user, text=text)


def recording_runtime(settings: Settings) -> ActionRuntime:
    client = redis.Redis.from_url(settings.redis_url)
    return ActionRuntime(executor=RecordingExecutor(client), notifier=RecordingNotifier(client))


def executions(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(EXECUTIONS, 0, -1)]


def notes(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(NOTES, 0, -1)]


def kube_recording_runtime(settings: Settings) -> ActionRuntime:
    from kube.actions import KubeExecutor

    client = redis.Redis.from_url(settings.redis_url)
    return ActionRuntime(executor=KubeExecutor.from_settings(settings), notifier=RecordingNotifier(client))


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    poll(condition, timeout, what)


Workers = WorkerProcesses
"""Real worker processes (the production CLI); shared with the other end-to-end tests."""
worker_env = settings_environment
