"""The Redis fixture is a real redis-server with AOF, and data survives a restart."""

from __future__ import annotations

import redis

from sandbox.redis_server import RedisServer


def test_fixture_is_real_redis_with_aof(redis_client: redis.Redis) -> None:
    assert redis_client.config_get("appendonly") == {"appendonly": "yes"}
    assert redis_client.info("server")["redis_version"]


def test_fixture_database_starts_empty(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-behind", "1")


def test_data_survives_restart_via_aof() -> None:
    with RedisServer(appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        client.xadd("stream", {"a": "1"})
        client.execute_command("CONFIG", "SET", "appendfsync", "always")
        client.set("k", "v")
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.get("k") == b"v"
        assert client.xlen("stream") == 1
