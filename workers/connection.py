"""Redis connections and the bot's RQ queues, created from settings in one place."""

from __future__ import annotations

from functools import lru_cache

from redis import Redis
from rq import Queue

from incident.keys import Keys
from incident.settings import Settings

QUEUE_KINDS: tuple[str, ...] = ("actions", "assess", "schedule", "postmortem", "default")
"""Queue kinds in the order a worker serves them: risky actions first."""


@lru_cache(maxsize=8)
def _redis_for_url(url: str) -> Redis:
    return Redis.from_url(url, health_check_interval=30, socket_timeout=30, socket_connect_timeout=10)


def get_redis(settings: Settings) -> Redis:
    """A shared Redis client for ``settings.redis_url`` (bytes responses; one pool per URL)."""
    return _redis_for_url(settings.redis_url)


def get_keys(settings: Settings) -> Keys:
    """The key builder for this installation."""
    return Keys(settings.queue_prefix)


def get_queue(settings: Settings, kind: str) -> Queue:
    """The RQ queue for one kind of job."""
    if kind not in QUEUE_KINDS:
        raise ValueError(f"unknown queue kind {kind!r}; expected one of {', '.join(QUEUE_KINDS)}")
    return Queue(get_keys(settings).queue_name(kind), connection=get_redis(settings))


def all_queues(settings: Settings) -> list[Queue]:
    """Every queue a worker of this bot serves, highest priority first."""
    return [get_queue(settings, kind) for kind in QUEUE_KINDS]
