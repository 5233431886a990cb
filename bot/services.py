"""What listeners need, built once per process: settings, Redis-backed store, Slack client, templates."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis import Redis

from chat.client import SlackClient
from incident.clock import Clock, SystemClock
from incident.keys import Keys
from incident.settings import Settings
from incident.store import IncidentStore
from incident.templates import TemplateRenderer, renderer_for
from workers.connection import get_keys, get_redis


@dataclass
class BotServices:
    """Dependencies of the Slack surface; tests build their own."""

    settings: Settings
    redis: Redis
    slack: SlackClient
    clock: Clock = field(default_factory=SystemClock)

    @property
    def keys(self) -> Keys:
        return get_keys(self.settings)

    @property
    def store(self) -> IncidentStore:
        return IncidentStore(self.redis, self.keys, self.clock)

    @property
    def templates(self) -> TemplateRenderer:
        return renderer_for(self.settings.templates_dir)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> "BotServices":
        return cls(settings=settings, redis=get_redis(settings), slack=SlackClient(settings), clock=clock or SystemClock())
