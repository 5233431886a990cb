"""What every request and job needs, built once per process: settings, Redis, keys, store, Slack, templates.

The bot's listeners and the workers' job entry points each build one :class:`Context` and hand it to
the service functions; tests build their own (a real Redis, the Slack emulator, a fixed clock). The
Kubernetes side is never built here: the risky actions' runtime (:attr:`Context.runtime`, named by
import path in ``runtime_path`` because the path travels with every action job) is built on first use,
and its Kubernetes executor only when an action really runs (``service.runtime.LazyExecutor``), so a
Slack-only job (a confirmation's expiry, the queue positions) keeps working when the kubeconfig is broken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis import Redis

from chat.client import SlackClient
from incident.clock import Clock, SystemClock
from incident.settings import RunMode, Settings, load_settings
from incident.templates import TemplateRenderer, renderer_for
from persistence.connection import get_keys, get_redis
from persistence.keys import Keys
from persistence.store import IncidentStore

from service.runtime import DEFAULT_RUNTIME, ActionRuntime, load_runtime

if TYPE_CHECKING:
    from service.outbox import Outbox


@dataclass
class Context:
    """Dependencies of the service layer; tests build their own.

    The Slack client is built on first use, so a process without a bot token (a worker serving only the
    assessment queue, the CLI's ``postmortem``) can still hold a context.
    """

    settings: Settings
    redis: Redis
    slack_client: SlackClient | None = field(default=None, repr=False)
    clock: Clock = field(default_factory=SystemClock)
    runtime_path: str = DEFAULT_RUNTIME
    """Which factory builds :attr:`runtime` (``module:function``); tests name a stand-in."""
    action_runtime: ActionRuntime | None = field(default=None, repr=False)

    @property
    def slack(self) -> SlackClient:
        """The Slack Web API client (raises ``ConfigError`` naming ``SLACK_BOT_TOKEN`` when it is not set)."""
        if self.slack_client is None:
            self.slack_client = SlackClient(self.settings)
        return self.slack_client

    @property
    def runtime(self) -> ActionRuntime:
        """The risky actions' executor and notifier, built on first use from :attr:`runtime_path`."""
        if self.action_runtime is None:
            self.action_runtime = load_runtime(self.runtime_path, self.settings)
        return self.action_runtime

    @property
    def keys(self) -> Keys:
        return get_keys(self.settings)

    @property
    def store(self) -> IncidentStore:
        return IncidentStore(self.redis, self.keys, self.clock)

    @property
    def outbox(self) -> "Outbox":
        """The durable Slack outbox (:mod:`service.outbox`): posts that must not be lost or wait for each other."""
        from service.outbox import Outbox

        return Outbox(self)

    @property
    def templates(self) -> TemplateRenderer:
        return renderer_for(self.settings.templates_dir)

    def refusal(self, macro: str, /, **arguments: Any) -> str:
        """The text of a refused request (a macro of ``templates/refusals.slack.j2``), to raise as its error."""
        return self.templates.macro("refusals.slack.j2", macro, **arguments)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None,
                      runtime_path: str = DEFAULT_RUNTIME) -> "Context":
        return cls(settings=settings, redis=get_redis(settings), clock=clock or SystemClock(),
                   runtime_path=runtime_path)

    @classmethod
    def load(cls, mode: RunMode = "worker", *, runtime_path: str = DEFAULT_RUNTIME,
             **overrides: object) -> "Context":
        """The context of a job or CLI command: settings from the environment (``overrides`` win)."""
        return cls.from_settings(load_settings(mode, **overrides), runtime_path=runtime_path)
