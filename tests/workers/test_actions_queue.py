"""Serialization, crash and lease behaviour with real RQ worker processes and a real redis-server.

The workers are the production CLI (``python -m k8s_incident_bot worker``) in their own process
groups; the executor is the stand-in of :mod:`tests.workers.test_actions_standin`, so these tests
are about the queue machinery, not Kubernetes (see ``test_actions_cluster.py`` for that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from incident.actions import ActionRequest, ActionStatus
from persistence.action_store import ActionStore
from incident.clock import from_epoch
from persistence.keys import Keys
from incident.model import Incident
from incident.settings import Settings
from persistence.store import IncidentStore
from persistence.timeline import Timeline
from tests.workers import test_actions_standin as standin
from tests.workers.test_actions_standin import Workers, wait_for, worker_env
from service.actions import action_store, enqueue_drain, enqueue_prepare
from service.context import Context

LEASE = 2
USERS = ("U_ALICE", "U_BOB", "U_CAROL", "U_DAVE")
FINAL = {ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.OUTCOME_UNKNOWN}


@pytest.fixture()
def settings(redis_url: str, tmp_path: Path) -> Settings:
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    return Settings(redis_url=redis_url, kubeconfig=kubeconfig, action_lease_seconds=LEASE,
                    confirmation_ttl_seconds=120, cluster_name="prod")


@pytest.fixture()
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    with Workers(worker_env(settings), tmp_path) as running:
        yield running


@pytest.fixture()
def context(settings: Settings, redis_client: redis.Redis) -> Context:
    return Context(settings, redis_client, action_runtime=standin.recording_runtime(settings),
                   runtime_path=standin.RUNTIME)


@pytest.fixture()
def incident(redis_client: redis.Redis) -> Incident:
    store = IncidentStore(redis_client)
    incident = Incident(id="20261123-001", title="nodes down", severity="sev1", channel_id="C_INC",
                        channel_name="inc-nodes-down", opened_by="U_ALICE", opened_at=store.clock.now())
    return store.create(incident)


def request(context: Context, incident: Incident, user: str, target: str, **params: object) -> ActionRequest:
    return action_store(context).new(cluster="prod", kind="cordon", target=target, requested_by=user,
                             channel_id=incident.channel_id, incident_id=incident.id, params=dict(params))


def confirm(context: Context, action_id: str, user: str) -> None:
    """What the bot does on Confirm: the atomic confirm, then a drain job on the actions queue."""
    result = action_store(context).confirm(action_id, user)
    assert result.queued
    enqueue_drain(context.settings, "prod", standin.RUNTIME)


def audit(client: redis.Redis, incident: Incident) -> list[dict]:
    return [entry.data for entry in Timeline(client, incident.id).entries({"action"})]


def test_twenty_concurrent_requests_run_one_at_a_time_in_request_order(
        context: Context, incident: Incident, workers: Workers, redis_client: redis.Redis) -> None:
    for _ in range(4):
        workers.start()
    store = action_store(context)
    prepared = threading.Barrier(20)
    errors: list[BaseException] = []

    def one_person(index: int) -> None:
        try:
            user = USERS[index % len(USERS)]
            action = request(context, incident, user, f"node-{index}", sleep=0.2)
            enqueue_prepare(context.settings, action.id, standin.RUNTIME)  # validation + dry-run in a worker
            wait_for(lambda: store.get(action.id).status == ActionStatus.AWAITING_CONFIRMATION, 60, "prepared")
            prepared.wait(timeout=60)  # then everybody clicks Confirm at once
            confirm(context, action.id, USERS[(index + 1) % len(USERS)])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=one_person, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not errors, errors
    ids = [f"A{n}" for n in range(1, 21)]
    wait_for(lambda: all(store.get(i).status in FINAL for i in ids), 60, "all 20 actions finished")

    actions = [store.get(i) for i in ids]
    assert {a.status for a in actions} == {ActionStatus.SUCCEEDED}
    assert {a.requested_by for a in actions} == set(USERS)
    entries = audit(redis_client, incident)
    assert len(entries) == 20 and len({e["action_id"] for e in entries}) == 20
    by_start = sorted(entries, key=lambda e: e["started_at"])
    for earlier, later in zip(by_start, by_start[1:]):
        assert later["started_at"] >= earlier["finished_at"], f"{earlier['action_id']} overlaps {later['action_id']}"
    assert [e["ticket"] for e in by_start] == list(range(1, 21)), "not in request (queue) order"
    assert [e["fence"] for e in by_start] == sorted(e["fence"] for e in by_start)
    assert redis_client.llen(standin.OVERLAPS) == 0
    starts = [e for e in standin.executions(redis_client) if e["event"] == "start"]
    assert sorted(e["id"] for e in starts) == sorted(ids), "each action ran exactly once"
    assert len({e["pid"] for e in starts}) >= 1
    assert redis_client.llen(Keys().action_queue("prod")) == 0
    wait_for(lambda: not redis_client.exists(Keys().action_lock("prod")), 5, "lock released")
    for entry in entries:
        assert entry["requested_by"] in USERS and len(entry["confirmed_by"]) == 1
        assert entry["dry_run"].startswith("stand-in dry-run of cordon node")
        assert entry["outcome"].startswith("stand-in did")
    outcome_posts = [n for n in standin.notes(redis_client) if n["method"] == "post" and "succeeded" in n["text"]]
    assert len(outcome_posts) == 20
    updates = [n for n in standin.notes(redis_client) if n["method"] == "update"]
    assert any("Queued: position" in str(n["blocks"]) for n in updates), "waiting requests are told their position"


def test_sigkill_mid_action_lease_expires_outcome_unknown_and_next_runs(
        context: Context, incident: Incident, workers: Workers, redis_client: redis.Redis) -> None:
    doomed = workers.start("--no-scheduler")
    store = action_store(context)
    first = request(context, incident, "U_ALICE", "node-hang", hang=True)
    second = request(context, incident, "U_BOB", "node-next", sleep=0.1)
    for action in (first, second):
        store.prepared(action.id, dry_run="stand-in", guard="", ttl_seconds=120)
    confirm(context, first.id, "U_BOB")
    wait_for(lambda: store.get(first.id).status == ActionStatus.RUNNING, 20, "first action running")
    confirm(context, second.id, "U_CAROL")  # its drain job waits: the only worker is busy
    survivor = workers.start()  # with the scheduler, which runs the watchdog drain
    time.sleep(1.0)  # the survivor takes the second drain job, finds the lock held, returns
    assert store.get(second.id).status == ActionStatus.QUEUED
    lock_key = Keys().action_lock("prod")
    assert 0 < redis_client.pttl(lock_key) <= LEASE * 1000

    horse = next(e["pid"] for e in standin.executions(redis_client) if e["id"] == first.id)
    workers.kill(doomed, horse)
    killed_at = time.time()
    wait_for(lambda: not redis_client.exists(lock_key), LEASE + 1.0, "the dead worker's lock to expire")
    assert time.time() - killed_at <= LEASE + 1.0
    wait_for(lambda: store.get(second.id).status in FINAL, 30, "the next action to run")
    assert survivor.poll() is None

    lost, nxt = store.get(first.id), store.get(second.id)
    assert lost.status == ActionStatus.OUTCOME_UNKNOWN and "not retried" in lost.outcome
    assert nxt.status == ActionStatus.SUCCEEDED
    assert nxt.fence is not None and lost.fence is not None and nxt.fence > lost.fence
    assert lost.finished_at is not None and lost.finished_at.timestamp() >= killed_at
    starts = [e["id"] for e in standin.executions(redis_client) if e["event"] == "start"]
    assert starts == [first.id, second.id], "the action whose worker died must never run again"
    posts = [n for n in standin.notes(redis_client) if n["method"] == "post" and n["channel"] == incident.channel_id]
    unknown = [p for p in posts if "outcome unknown — verify in the cluster" in p["text"] and first.id in p["text"]]
    assert len(unknown) == 1
    entries = audit(redis_client, incident)
    assert [(e["action_id"], e["status"]) for e in entries] == [(first.id, "outcome_unknown"), (second.id, "succeeded")]
    assert entries[0]["started_at"] < entries[0]["finished_at"] <= entries[1]["started_at"]
    assert from_epoch(entries[1]["started_at"]).timestamp() >= killed_at


def test_validation_failure_rejects_without_queueing(context: Context, incident: Incident,
                                                     workers: Workers, redis_client: redis.Redis) -> None:
    action = request(context, incident, "U_ALICE", "missing-node")
    enqueue_prepare(context.settings, action.id, standin.RUNTIME)
    workers.start("--burst")  # after the job is queued: a burst worker stops once it finds the queues empty
    wait_for(lambda: action_store(context).get(action.id).status == ActionStatus.REJECTED, 20, "rejected")
    assert "does not exist" in action_store(context).get(action.id).outcome
    wait_for(lambda: any(n["method"] == "ephemeral" for n in standin.notes(redis_client)), 10, "the requester told")
    told = [n for n in standin.notes(redis_client) if n["method"] == "ephemeral"]
    assert told and told[0]["user"] == "U_ALICE" and "nothing was changed" in told[0]["text"]
    assert redis_client.llen(Keys().action_queue("prod")) == 0
    assert not standin.executions(redis_client)
