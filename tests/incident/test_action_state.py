"""Action requests against a real redis-server: expired, replayed, guarded and cancelled confirms change nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from persistence.action_lock import ActionLock
from persistence.action_queue import ActionQueue
from incident.actions import (
    ActionRequest,
    ActionStatus,
    control_plane_failure,
)
from incident.kube_syntax import check_name, check_namespace, parse_namespaced
from incident.assessment import CheckResult, PatternMatch, Verdict
from incident.errors import CommandError, ConfirmationError, NotPermitted
from persistence.action_store import ActionStore
from persistence.keys import Keys
from incident.verdict import decide


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def store(redis_client: redis.Redis, clock: FakeClock) -> ActionStore:
    return ActionStore(redis_client, Keys(), clock)


def _awaiting(store: ActionStore, kind: str = "cordon", target: str = "node-1", *,
              params: dict | None = None, second: bool = False, guard: str = "") -> ActionRequest:
    request = store.new(cluster="prod", kind=kind, target=target, requested_by="U_ALICE", channel_id="C1",
                        incident_id="inc-1", params=params, second_confirmer_for_destructive=second)
    return store.prepared(request.id, dry_run="node-1: unschedulable false → true", guard=guard, ttl_seconds=300)


def _snapshot(redis_client: redis.Redis, action_id: str) -> tuple[dict, list]:
    keys = Keys()
    return redis_client.hgetall(keys.action(action_id)), redis_client.lrange(keys.action_queue("prod"), 0, -1)


def test_confirm_queues_once_and_a_replay_changes_nothing(store: ActionStore, redis_client: redis.Redis) -> None:
    request = _awaiting(store)
    result = store.confirm(request.id, "U_BOB")
    assert result.queued and result.position == 1
    assert result.request.status == ActionStatus.QUEUED and result.request.confirmed_by == ["U_BOB"]
    before = _snapshot(redis_client, request.id)
    for user in ("U_BOB", "U_ALICE"):
        with pytest.raises(ConfirmationError, match="already confirmed and queued"):
            store.confirm(request.id, user)
    assert _snapshot(redis_client, request.id) == before


def test_confirm_after_the_deadline_expires_and_changes_nothing_else(store: ActionStore, clock: FakeClock,
                                                                      redis_client: redis.Redis) -> None:
    request = _awaiting(store)
    clock.moment += timedelta(seconds=301)
    with pytest.raises(ConfirmationError, match="expired"):
        store.confirm(request.id, "U_BOB")
    assert store.get(request.id).status == ActionStatus.EXPIRED
    assert redis_client.llen(Keys().action_queue("prod")) == 0
    before = _snapshot(redis_client, request.id)
    with pytest.raises(ConfirmationError, match="has expired"):
        store.confirm(request.id, "U_BOB")
    assert _snapshot(redis_client, request.id) == before


def test_expire_job_only_after_the_deadline(store: ActionStore, clock: FakeClock) -> None:
    request = _awaiting(store)
    assert not store.expire(request.id)
    clock.moment += timedelta(seconds=300)
    assert store.expire(request.id)
    assert not store.expire(request.id)


def test_unknown_and_unprepared_requests_refuse(store: ActionStore) -> None:
    with pytest.raises(ConfirmationError, match="No action"):
        store.confirm("A999", "U_BOB")
    request = store.new(cluster="prod", kind="cordon", target="n", requested_by="U_ALICE",
                        channel_id="C1", incident_id=None)
    with pytest.raises(ConfirmationError, match="still being checked"):
        store.confirm(request.id, "U_ALICE")


def test_destructive_needs_two_different_people(store: ActionStore) -> None:
    request = _awaiting(store, "scale", "shop/web", params={"replicas": 0, "workload": "deployment"},
                        second=True)
    assert request.confirmers_needed == 2 and request.destructive
    first = store.confirm(request.id, "U_ALICE")
    assert not first.queued and first.request.status == ActionStatus.AWAITING_CONFIRMATION
    with pytest.raises(ConfirmationError, match="already confirmed"):
        store.confirm(request.id, "U_ALICE")
    second = store.confirm(request.id, "U_BOB")
    assert second.queued and second.request.confirmed_by == ["U_ALICE", "U_BOB"]
    not_destructive = _awaiting(store, "scale", "shop/web", params={"replicas": 2}, second=True)
    assert not_destructive.confirmers_needed == 1


def test_recovery_order_guard_needs_proceed_anyway(store: ActionStore) -> None:
    request = _awaiting(store, "restart", "shop/web", guard="etcd: fail")
    with pytest.raises(ConfirmationError, match="control plane is failing"):
        store.confirm(request.id, "U_BOB")
    assert store.get(request.id).status == ActionStatus.AWAITING_CONFIRMATION
    result = store.confirm(request.id, "U_BOB", proceed_anyway=True)
    assert result.queued and result.request.guard_ack_by == "U_BOB"


def test_cancel_waiting_only_by_requester_or_commander(store: ActionStore, redis_client: redis.Redis,
                                                       clock: FakeClock) -> None:
    queue = ActionQueue(redis_client, "prod", Keys(), clock)
    first, second = _awaiting(store), _awaiting(store, target="node-2")
    store.confirm(first.id, "U_BOB")
    store.confirm(second.id, "U_BOB")
    assert queue.ids() == [first.id, second.id] and queue.position(second.id) == 2
    with pytest.raises(NotPermitted):
        queue.cancel(store.get(second.id), "U_BOB", commander="U_CAROL")
    queue.cancel(store.get(second.id), "U_CAROL", commander="U_CAROL")
    assert queue.ids() == [first.id] and store.get(second.id).status == ActionStatus.CANCELLED
    lock = ActionLock(redis_client, "prod", lease_seconds=5)
    fence = lock.acquire()
    assert fence is not None
    assert queue.start(first.id, token=lock.token, fence=fence, worker="w") == "started"
    with pytest.raises(ConfirmationError, match="already running"):
        queue.cancel(store.get(first.id), "U_ALICE")


def test_fenced_steps_refuse_stale_holders(store: ActionStore, redis_client: redis.Redis, clock: FakeClock) -> None:
    queue = ActionQueue(redis_client, "prod", Keys(), clock)
    request = _awaiting(store)
    store.confirm(request.id, "U_BOB")
    old = ActionLock(redis_client, "prod", lease_seconds=5, owner="old")
    assert old.acquire() == 1
    stranger = ActionLock(redis_client, "prod", lease_seconds=5, owner="stranger")
    stranger.fence = 7
    assert queue.start(request.id, token=stranger.token, fence=7, worker="stranger") == "lost"
    assert queue.start(request.id, token=old.token, fence=1, worker="old") == "started"
    running = store.get(request.id)
    redis_client.delete(Keys().action_lock("prod"))  # the old lease expired
    new = ActionLock(redis_client, "prod", lease_seconds=5, owner="new")
    assert new.acquire() == 2
    assert queue.mark_unknown(running, token=new.token, outcome="worker died")
    assert not queue.finish(running, ActionStatus.SUCCEEDED, "done late", fence=1)
    final = store.get(request.id)
    assert final.status == ActionStatus.OUTCOME_UNKNOWN and final.outcome == "worker died"
    assert queue.ids() == []
    from persistence.timeline import Timeline

    audit = Timeline(redis_client, "inc-1").entries({"action"})
    assert len(audit) == 1 and audit[0].data["status"] == "outcome_unknown" and audit[0].data["fence"] == 1


def test_names_are_checked_by_dns1123_rules() -> None:
    assert check_name("kwok-node-0", "node") == "kwok-node-0"
    assert check_name("ip-10-0-1-2.ec2.internal", "node")
    assert parse_namespaced("kube-system/coredns", "deployment") == "kube-system/coredns"
    for bad in ("Node_1", "-x", "x-", "a" * 254, "", "a..b"):
        with pytest.raises(CommandError):
            check_name(bad, "node")
    for bad in ("Kube", "a.b", "a" * 64, "-a"):
        with pytest.raises(CommandError):
            check_namespace(bad)
    for bad in ("coredns", "/x", "ns/", "ns/Bad"):
        with pytest.raises(CommandError):
            parse_namespaced(bad, "deployment")


def test_control_plane_failure_reads_the_assessment() -> None:
    def entry(*patterns: PatternMatch, checks: list[dict[str, str]] | None = None) -> dict[str, Any]:
        verdict = Verdict("cluster-wide" if patterns else "healthy", "headline", patterns)
        return {"snapshot": {"checks": checks or []}, "verdict": verdict.to_json()}

    dns = PatternMatch("dns-cascade", "DNS cascade", "cluster-wide", "dns/ingress", ("coredns down",), ())
    scheduler_only = PatternMatch("control-plane", "Control-plane failure", "cluster-wide", "scheduler/controller-manager",
                                  ("leader lease not renewed",), (), root_cause="scheduler/controller-manager",
                                  layers=("scheduler/controller-manager",))
    etcd = replace(scheduler_only, layer="etcd", root_cause="etcd", layers=("etcd", "apiserver"),
                   evidence=("etcd endpoint(s) unhealthy: https://10.0.0.1:2379",))
    assert control_plane_failure(None) == ""
    assert control_plane_failure(entry(dns)) == ""
    assert control_plane_failure(entry(scheduler_only)) == ""  # does not hold applications back
    assert control_plane_failure(entry(etcd, dns)) == "Control-plane failure: etcd endpoint(s) unhealthy: https://10.0.0.1:2379"
    assert control_plane_failure(entry(checks=[{"name": "apiserver", "status": "timeout"}])) == "apiserver check: timeout"
    assert control_plane_failure(entry(checks=[{"name": "etcd", "status": "ok"}, {"name": "dns", "status": "fail"}])) == ""
    unreachable = decide([CheckResult("apiserver", "fail", "unreachable", {"reachable": False, "error": "refused"})])
    reason = control_plane_failure({"snapshot": {"checks": []}, "verdict": unreachable.to_json()})
    assert reason.startswith("Control-plane failure: API server unreachable"), reason
