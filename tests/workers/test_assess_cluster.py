"""The assessment job run by real RQ worker processes against the real test bed, including a worker killed mid-way.

The worker is the production ``k8s-incident-bot worker`` command; Slack is the emulator; the apiserver
is reached through the fault proxy so a test can make the assessment slow enough to kill it mid-way.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Retry
from rq.job import Job, JobStatus

from chat.client import SlackClient
from incident.settings import Settings
from persistence.store import IncidentStore
from sandbox.cluster import LocalCluster
from sandbox.ports import free_port
from sandbox.proxy import FaultProxy
from sandbox.slack import SlackEmulator
from tests.fixtures.workers import WorkerProcesses, child_pids, settings_environment
from service.assessment import META_KEY, WORKER_STOPPED, finalize_interrupted
from persistence.connection import get_keys
from service.jobs import get_queue
from sandbox.waiting import poll

pytestmark = pytest.mark.cluster
CHANNEL = "C_INC"
JOB = "workers.assess.run_assessment"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    return poll(condition, timeout, what)


@pytest.fixture()
def proxy(k8s_cluster: LocalCluster) -> Iterator[FaultProxy]:
    assert k8s_cluster.ports is not None
    with FaultProxy("127.0.0.1", k8s_cluster.ports.apiserver) as running:
        yield running


@pytest.fixture()
def settings(slack: SlackEmulator, redis_url: str, k8s_cluster: LocalCluster, proxy: FaultProxy, tmp_path: Path) -> Settings:
    slack.add_channel(CHANNEL, name="inc-assess", members=[slack.bot_user_id, "U_ALICE"])
    kubeconfig = k8s_cluster.write_kubeconfig(tmp_path / "proxied.kubeconfig", server=proxy.url)
    return Settings(slack_bot_token="xoxb-test-token", slack_api_url=slack.api_url, redis_url=redis_url,
                    kubeconfig=kubeconfig, cluster_name="sandbox", http_port=free_port())


@pytest.fixture()
def pool(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(settings_environment(settings), tmp_path) as workers:
        yield workers


def enqueue(settings: Settings, progress_ts: str, **options: Any) -> Job:
    return get_queue(settings, "assess").enqueue(JOB, "INC-1", CHANNEL, progress_ts=progress_ts, job_timeout=180, **options)


def progress(slack_client: SlackClient) -> str:
    return slack_client.post_message(CHANNEL, ":mag: Assessment requested: queued…")


def timeline(settings: Settings) -> list[Any]:
    return IncidentStore(redis.Redis.from_url(settings.redis_url), get_keys(settings)).timeline("INC-1").entries({"assessment"})


def kill_mid_assessment(settings: Settings, proxy: FaultProxy, pool: WorkerProcesses, job: Job) -> tuple[int, int]:
    """Wait until some checks are done and some are not, then SIGKILL the work horse; returns (done, total)."""
    connection = redis.Redis.from_url(settings.redis_url)
    worker = pool.start("--no-scheduler")

    def partly_done() -> tuple[int, int] | None:
        state = Job.fetch(job.id, connection=connection).meta.get(META_KEY) or {}
        done, total = len(state.get("results") or []), len(state.get("checks") or [])
        return (done, total) if 0 < done < total else None

    counts = wait_for(partly_done, 60, "some checks finished, others still running")
    horses = wait_for(lambda: child_pids(worker.pid), 10, "the work horse")
    for horse in horses:
        os.kill(horse, signal.SIGKILL)
    return counts


def test_a_real_worker_posts_the_verdict_and_saves_the_snapshot(settings: Settings, slack: SlackEmulator,
                                                                pool: WorkerProcesses) -> None:
    ts = progress(SlackClient(settings))
    job = enqueue(settings, ts)
    pool.burst()
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, pool.log_text()
    result = job.return_value()
    assert result["scope"] in ("healthy", "component") and result["progress_ts"] == ts
    final = slack.messages(CHANNEL, include_replies=False)
    assert [m["ts"] for m in final] == [ts]
    assert "No cluster-wide failure" in final[0]["text"]
    assert len(slack.calls_to("chat.update")) >= 2
    assert len(slack.replies(CHANNEL, ts)) >= 2  # the parent and the details
    entries = timeline(settings)
    assert len(entries) == 1 and {c["name"] for c in entries[0].data["snapshot"]["checks"]} >= {"apiserver", "nodes", "dns"}


def test_worker_killed_mid_assessment_leaves_a_verdict_naming_the_missing_checks(
        settings: Settings, slack: SlackEmulator, proxy: FaultProxy, pool: WorkerProcesses) -> None:
    proxy.set_latency(1.0)  # every apiserver request takes a second: the assessment runs for several seconds
    client = SlackClient(settings)
    ts = progress(client)
    job = enqueue(settings, ts)  # no retry: the job dies with its horse
    done, total = kill_mid_assessment(settings, proxy, pool, job)
    connection = redis.Redis.from_url(settings.redis_url)
    wait_for(lambda: Job.fetch(job.id, connection=connection).get_status() == JobStatus.FAILED, 30, "the job marked failed")
    proxy.set_latency(0.0)

    assert finalize_interrupted(settings, client, connection) == [job.id]
    assert finalize_interrupted(settings, client, connection) == []  # once only

    message = slack.messages(CHANNEL, include_replies=False)[0]
    assert message["ts"] == ts
    blocks = json.dumps(message["blocks"])
    assert "An earlier attempt was interrupted" in blocks and "Could not check" in blocks
    assert WORKER_STOPPED in blocks
    entry = timeline(settings)[0]
    interrupted = entry.data["snapshot"]["interrupted"]
    assert len(interrupted["finished"]) >= done and interrupted["missing"]
    assert len(interrupted["finished"]) + len(interrupted["missing"]) == total
    missing = {u["check"] for u in entry.data["verdict"]["unchecked"] if u["reason"] == WORKER_STOPPED}
    assert missing == set(interrupted["missing"])


def test_the_retry_after_a_killed_worker_says_what_the_first_attempt_missed(
        settings: Settings, slack: SlackEmulator, proxy: FaultProxy, pool: WorkerProcesses) -> None:
    proxy.set_latency(1.0)
    ts = progress(SlackClient(settings))
    job = enqueue(settings, ts, retry=Retry(max=1))
    kill_mid_assessment(settings, proxy, pool, job)
    connection = redis.Redis.from_url(settings.redis_url)
    time.sleep(1.0)
    proxy.set_latency(0.0)  # the retry runs at full speed
    wait_for(lambda: Job.fetch(job.id, connection=connection).get_status() == JobStatus.FINISHED, 90,
             "the retried job finished")
    result = Job.fetch(job.id, connection=connection).return_value()
    assert result["interrupted"]["missing"], result
    message = slack.messages(CHANNEL, include_replies=False)[0]
    assert message["ts"] == ts
    assert "An earlier attempt was interrupted" in json.dumps(message["blocks"])
    entries = timeline(settings)
    assert len(entries) == 1 and entries[0].data["snapshot"]["interrupted"]["missing"] == result["interrupted"]["missing"]
