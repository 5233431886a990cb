"""What every request and job needs, built once per process: settings, Redis, keys, store, Slack, templates.

The bot's listeners and the workers' job entry points each build one :class:`Context` and hand it to
the service functions; tests build their own (a real Redis, the Slack emulator, a fixed clock). The
Kubernetes side is never built here: only jobs that talk to the cluster build it (see
:mod:`service.actions` and :mod:`service.assessment`), so a Slack-only job keeps working when the
kubeconfig is broken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis import Redis

from chat.client import SlackClient
from incident.clock import Clock, SystemClock
from incident.settings import RunMode, Settings, load_settings
from incident.templates import TemplateRenderer, renderer_for
from persistence.connection import get_keys, get_redis
from persistence.keys import Keys
from persistence.store import IncidentStore

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

    @property
    def slack(self) -> SlackClient:
        """The Slack Web API client (raises ``ConfigError`` naming ``SLACK_BOT_TOKEN`` when it is not set)."""
        if self.slack_client is None:
            self.slack_client = SlackClient(self.settings)
        return self.slack_client

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

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> "Context":
        return cls(settings=settings, redis=get_redis(settings), clock=clock or SystemClock())

    @classmethod
    def load(cls, mode: RunMode = "worker", **overrides: object) -> "Context":
        """The context of a job or CLI command: settings from the environment (``overrides`` win)."""
        return cls.from_settings(load_settings(mode, **overrides))
