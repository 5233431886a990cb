"""Redis connections and the key builder, created from settings in one place.

Every process (bot, worker, CLI) shares one connection pool per Redis (``REDIS_URL``, or the master that
``REDIS_SENTINELS`` name); RQ queues are built from it by :mod:`service.jobs`, the only module that
queues jobs, so the workers and their schedulers follow a Sentinel failover like everything else.

With Sentinel, a command that fails on a lost connection is retried with backoff for about
:data:`FAILOVER_RIDE_SECONDS`: each retry asks the sentinels for the current master, so a failover
(the sentinels' ``down-after-milliseconds`` plus the promotion) is ridden out without an error; past
that, the error reaches the caller, which says the store is unavailable (never a false "done").
"""

from __future__ import annotations

from functools import lru_cache

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from incident.settings import Settings
from persistence.keys import Keys


@lru_cache(maxsize=8)
def _redis_for_url(url: str) -> Redis:
    return Redis.from_url(url, health_check_interval=30, socket_timeout=30, socket_connect_timeout=10)


FAILOVER_RETRIES = 10
FAILOVER_RIDE_SECONDS = 12
"""About how long a Sentinel client keeps retrying (backoff 0.1 s doubling to 2 s, ten tries)."""


@lru_cache(maxsize=8)
def _redis_for_sentinels(sentinels: tuple[tuple[str, int], ...], master: str, password: str | None,
                         sentinel_password: str | None) -> Redis:
    sentinel = Sentinel(list(sentinels), socket_timeout=2, socket_connect_timeout=2,
                        sentinel_kwargs={"password": sentinel_password, "socket_timeout": 2} if sentinel_password
                        else {"socket_timeout": 2})
    return sentinel.master_for(
        master, password=password, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), FAILOVER_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError])


def get_redis(settings: Settings) -> Redis:
    """A shared Redis client (bytes responses): the Sentinel master when ``REDIS_SENTINELS`` is set, else
    ``REDIS_URL``; one pool per target."""
    if settings.redis_sentinels:
        addresses = tuple((host, int(port)) for host, _, port in (a.rpartition(":") for a in settings.redis_sentinels))
        password = settings.redis_password.get_secret_value() if settings.redis_password else None
        sentinel_password = (settings.redis_sentinel_password.get_secret_value()
                             if settings.redis_sentinel_password else None)
        return _redis_for_sentinels(addresses, settings.redis_sentinel_master, password, sentinel_password)
    return _redis_for_url(settings.redis_url)


def get_keys(settings: Settings) -> Keys:
    """The key builder for this installation."""
    return Keys(settings.queue_prefix)
