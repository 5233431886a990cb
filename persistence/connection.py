"""Redis connections and the key builder, created from settings in one place.

Every process (bot, worker, CLI) shares one connection pool per Redis URL; RQ queues are built from
it by :mod:`service.jobs`, the only module that queues jobs.
"""

from __future__ import annotations

from functools import lru_cache

from redis import Redis

from incident.settings import Settings
from persistence.keys import Keys


@lru_cache(maxsize=8)
def _redis_for_url(url: str) -> Redis:
    return Redis.from_url(url, health_check_interval=30, socket_timeout=30, socket_connect_timeout=10)


def get_redis(settings: Settings) -> Redis:
    """A shared Redis client for ``settings.redis_url`` (bytes responses; one pool per URL)."""
    return _redis_for_url(settings.redis_url)


def get_keys(settings: Settings) -> Keys:
    """The key builder for this installation."""
    return Keys(settings.queue_prefix)
