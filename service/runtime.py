"""The risky actions' runtime: what touches the cluster (an executor) and what tells people (a notifier).

The queue machinery of :mod:`service.actions` never names Kubernetes or Slack: it calls an
:class:`ActionRuntime`, built by a factory named by import path (``module:function``). The path travels
with every action job (so a test's stand-in runtime is used by the worker that runs its jobs); the
production factory is ``service.actions:kube_slack_runtime``. :class:`service.context.Context` builds the
runtime on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from incident.actions import ActionRequest, Outcome
from incident.settings import Settings

DEFAULT_RUNTIME = "service.actions:kube_slack_runtime"
"""The production runtime's factory, by import path (it travels with every action job)."""

Guard = Callable[[], None]
"""Raises :class:`LeaseLost` unless the lock is still ours; executors call it before every change."""
Progress = Callable[[str], None]


class Notifier(Protocol):
    """Where people are told (``chat.client.SlackClient`` fits)."""

    def post_message(self, channel: str, text: str, blocks: Any = None, thread_ts: str | None = None) -> str: ...

    def update_message(self, channel: str, ts: str, text: str, blocks: Any = None) -> None: ...

    def post_ephemeral(self, channel: str, user: str, text: str, blocks: Any = None) -> None: ...


class Executor(Protocol):
    """Talks to the cluster: ``prepare`` validates and dry-runs (read-only), ``execute`` changes it."""

    def prepare(self, request: ActionRequest) -> str:
        """The human summary of what will change; raises IncidentBotError to reject the request."""
        ...

    def execute(self, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome: ...


@dataclass
class ActionRuntime:
    """The cluster side and the chat side of running actions."""

    executor: Executor
    notifier: Notifier


RuntimeFactory = Callable[[Settings], ActionRuntime]


class LazyExecutor:
    """Builds the Kubernetes executor on first use, so Slack-only jobs (a confirmation's expiry, queue
    positions) never load the kubeconfig: a broken one must not stop Confirm buttons from expiring."""

    def __init__(self, build: Callable[[], Executor]) -> None:
        self._build = build
        self._executor: Executor | None = None

    def _get(self) -> Executor:
        if self._executor is None:
            self._executor = self._build()
        return self._executor

    def prepare(self, request: ActionRequest) -> str:
        return self._get().prepare(request)

    def execute(self, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
        return self._get().execute(request, guard, progress)


def load_runtime(path: str, settings: Settings) -> ActionRuntime:
    """Build the runtime named ``module:function``."""
    module_name, _, attribute = path.partition(":")
    factory: RuntimeFactory = getattr(importlib.import_module(module_name), attribute)
    return factory(settings)
