"""The per-cluster action lock against a real redis-server: fences, compare-and-set renew/release, expiry."""

from __future__ import annotations

import time

import redis

from persistence.action_lock import ActionLock, LeaseKeeper, LeaseLost
from persistence.keys import Keys


def test_fences_increase_and_only_one_holder(redis_client: redis.Redis) -> None:
    first = ActionLock(redis_client, "prod", lease_seconds=5, owner="w1")
    second = ActionLock(redis_client, "prod", lease_seconds=5, owner="w2")
    assert first.acquire() == 1
    assert second.acquire() is None
    assert second.holder() == (1, "w1")
    assert first.held_by_me() and not second.held_by_me()
    assert first.release()
    assert second.acquire() == 2
    assert second.holder() == (2, "w2")
    other_cluster = ActionLock(redis_client, "staging", lease_seconds=5, owner="w3")
    assert other_cluster.acquire() == 1  # clusters are independent


def test_an_expired_holder_cannot_renew_or_release_its_successor(redis_client: redis.Redis) -> None:
    old = ActionLock(redis_client, "prod", lease_seconds=0.2, owner="old")
    assert old.acquire() == 1
    time.sleep(0.35)
    assert not old.held_by_me()
    new = ActionLock(redis_client, "prod", lease_seconds=5, owner="new")
    assert new.acquire() == 2
    assert not old.renew()
    assert not old.release()
    assert new.held_by_me()
    try:
        old.check()
    except LeaseLost as error:
        assert "expired" in error.message
    else:
        raise AssertionError("check() must raise for a lost lease")


def test_keeper_renews_past_the_lease_and_notices_loss(redis_client: redis.Redis) -> None:
    lock = ActionLock(redis_client, "prod", lease_seconds=0.3, owner="w")
    assert lock.acquire() is not None
    with LeaseKeeper(lock) as keeper:
        time.sleep(1.0)  # > 3 leases
        keeper.check()
        assert 0 < redis_client.pttl(Keys().action_lock("prod")) <= 300
        redis_client.set(Keys().action_lock("prod"), "99:thief")
        time.sleep(0.3)
        assert keeper.lost.is_set()
        try:
            keeper.check()
        except LeaseLost:
            pass
        else:
            raise AssertionError("keeper.check() must raise once the lock is someone else's")
    assert redis_client.get(Keys().action_lock("prod")) == b"99:thief"
