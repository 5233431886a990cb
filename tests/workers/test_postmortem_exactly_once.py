"""The post-mortem draft is shared once per request, whatever fails between the upload and the timeline.

Real Redis, the Slack emulator, and (for the retry and crash cases) real RQ worker processes running
the job the bot queues (``service.lifecycle.request_postmortem``: one retry). The other cases call the
job's body twice with one request id, which is what a retry does.
"""

from __future__ import annotations

import time

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from service.lifecycle import request_postmortem
from service.context import Context
from chat.client import SlackClient
from incident.errors import SlackApiError
from incident.model import Incident
from incident.settings import Settings
from persistence.store import IncidentStore
from persistence.timeline import Timeline
from sandbox.slack import SlackEmulator
from tests.bot.helpers import wait_until
from tests.fixtures.workers import WorkerProcesses, child_pids
from persistence.connection import get_keys
from service.postmortem import UploadRecord, publish_postmortem
from workers.run import MAINTENANCE_INTERVAL_SECONDS

CHANNEL = "C_INC"
COMPLETE = "files.completeUploadExternal"
TICKET = "files.getUploadURLExternal"


@pytest.fixture()
def incident(slack: SlackEmulator, bot_settings: Settings, redis_client: redis.Redis) -> Incident:
    slack.add_channel(CHANNEL, name="inc-api-down", members=[slack.bot_user_id, "U_ALICE"])
    store = IncidentStore(redis_client, get_keys(bot_settings))
    store.create(Incident(id="20261123-001", title="API down", severity="sev1", channel_id=CHANNEL,
                          channel_name="inc-api-down", opened_by="U_ALICE", opened_at=store.clock.now()))
    store.timeline("20261123-001").append("status_update", "U_ALICE", {"text": "investigating"})
    return store.get("20261123-001")


def shared_files(slack: SlackEmulator) -> list[str]:
    """Ids of the files shared into the incident channel, from the channel's messages."""
    return [f["id"] for m in slack.messages(CHANNEL) for f in m.get("files") or []]


def drafted(settings: Settings, redis_client: redis.Redis, incident: Incident) -> list[dict[str, object]]:
    return [e.data for e in IncidentStore(redis_client, get_keys(settings)).timeline(incident.id).entries(
        {"postmortem_drafted"})]


def queue_postmortem(bot_settings: Settings, incident: Incident) -> Job:
    """What `/k8s postmortem` and resolving do: the production enqueue, with its one retry."""
    services = Context.from_settings(bot_settings)
    request_postmortem(services, incident, "U_ALICE")
    queue = Queue(services.keys.queue_name("postmortem"), connection=services.redis)
    (job,) = queue.get_jobs()
    assert job.retries_left == 1
    return job


def test_completion_made_but_answered_500_is_shared_once_after_the_rq_retry(
        slack: SlackEmulator, bot_settings: Settings, redis_client: redis.Redis, workers: WorkerProcesses,
        incident: Incident) -> None:
    slack.server_error(COMPLETE, processed=True)  # Slack shares the file, the answer is lost
    job = queue_postmortem(bot_settings, incident)

    workers.burst()  # the first attempt fails on the 500; RQ requeues it; the retry runs in the same burst

    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, workers.log_text()
    assert [c.status for c in slack.calls_to(COMPLETE)] == [500], "the retry must not complete a second upload"
    assert len(slack.calls_to(TICKET)) == 1
    assert slack.calls_to("files.info"), "the retry asks Slack where the recorded file is"
    (file,) = slack.files
    assert shared_files(slack) == [file.id] and file.channel == CHANNEL
    assert drafted(bot_settings, redis_client, incident) == [{"file_id": file.id, "bytes": len(file.content or b"")}]
    assert job.return_value() == {"file_id": file.id, "bytes": len(file.content or b"")}
    record = UploadRecord(redis_client, get_keys(bot_settings).postmortem_upload(incident.id, job.id)).read()
    assert (record.file_id, record.done) == (file.id, True)
    assert 0 < redis_client.ttl(get_keys(bot_settings).postmortem_upload(incident.id, job.id)) <= 7 * 24 * 3600


@pytest.mark.parametrize(("real_wait", "survivor"), [(False, False), (False, True),
                                                     pytest.param(True, False, marks=pytest.mark.soak)],
                         ids=["aged-heartbeat", "surviving-worker-sweeps-within-a-minute", "real-90s-wait"])
def test_worker_sigkilled_while_the_completion_is_in_flight_shares_once(
        slack: SlackEmulator, bot_settings: Settings, redis_client: redis.Redis, workers: WorkerProcesses,
        incident: Incident, real_wait: bool, survivor: bool) -> None:
    # The emulator holds the completion before applying it, and applies it even though the caller died:
    # the worker is killed after sending it, Slack shares the file, nobody reads the answer.
    slack.delay(COMPLETE, 3.0)
    job = queue_postmortem(bot_settings, incident)
    doomed = workers.start("--no-scheduler")
    wait_until(lambda: slack.in_flight(COMPLETE) == 1, 60)
    (horse,) = child_pids(doomed.pid)  # --no-scheduler: the work horse is the worker's only child
    if survivor:  # already running when the job is abandoned: only its periodic sweep can pick it up
        workers.start("--no-scheduler")
    workers.kill(doomed, horse)

    slack.wait_for_calls(COMPLETE, 1, timeout=10)
    slack.delay(COMPLETE, 0)
    assert len(shared_files(slack)) == 1 and drafted(bot_settings, redis_client, incident) == []
    assert Job.fetch(job.id, connection=redis_client).get_status() == JobStatus.STARTED  # RQ cannot know yet

    # RQ declares a job abandoned when its execution's heartbeat lapses: job_monitoring_interval (30 s)
    # + 60 s after the last one. A worker's maintenance pass (at its start, then every minute: workers/run.py) then
    # retries it, since it has a retry left. The fast variant ages the entry as those 90 s would.
    registry = StartedJobRegistry(queue=Queue(get_keys(bot_settings).queue_name("postmortem"),
                                              connection=redis_client))
    entries = redis_client.zrange(registry.key, 0, -1, withscores=True)
    assert [m.decode().split(":")[0] for m, _ in entries] == [job.id]
    ((member, expires_at),) = entries
    assert expires_at - time.time() <= 91
    if real_wait:
        time.sleep(max(0.0, expires_at - time.time()) + 1)
    else:
        redis_client.zadd(registry.key, {member: time.time() - 1})

    if survivor:  # the running worker's next sweep (every MAINTENANCE_INTERVAL_SECONDS) requeues and runs it
        wait_until(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, MAINTENANCE_INTERVAL_SECONDS + 30)
    else:
        workers.burst()  # a new worker: its start-up maintenance requeues the abandoned job, then runs it

    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, workers.log_text()
    assert len(slack.calls_to(COMPLETE)) == 1 and len(slack.calls_to(TICKET)) == 1
    (file,) = slack.files
    assert shared_files(slack) == [file.id]
    assert [d["file_id"] for d in drafted(bot_settings, redis_client, incident)] == [file.id]


def test_completion_never_made_uploads_afresh_and_shares_once(
        slack: SlackEmulator, bot_settings: Settings, redis_client: redis.Redis, incident: Incident) -> None:
    client = SlackClient(bot_settings)
    slack.server_error(COMPLETE)  # 500 and nothing done: the recorded file never reaches the channel
    with pytest.raises(SlackApiError) as failed:
        publish_postmortem(bot_settings, redis_client, client, incident.id, "U_ALICE", "req-1")
    assert (failed.value.method, failed.value.code) == (COMPLETE, "internal_error")
    (lost,) = slack.files
    assert not lost.completed and shared_files(slack) == []

    result = publish_postmortem(bot_settings, redis_client, client, incident.id, "U_ALICE", "req-1",
                                settle_waits=(0.1,))

    assert [c.params["file"] for c in slack.calls_to("files.info")] == [lost.id, lost.id]  # asked, then once more
    assert len(slack.calls_to(TICKET)) == 2
    shared = shared_files(slack)
    assert len(shared) == 1 and shared[0] != lost.id and result["file_id"] == shared[0]
    assert [d["file_id"] for d in drafted(bot_settings, redis_client, incident)] == shared


def test_crash_after_the_share_before_the_timeline_entry_only_writes_the_entry(
        slack: SlackEmulator, bot_settings: Settings, redis_client: redis.Redis, incident: Incident,
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = SlackClient(bot_settings)
    real_append = Timeline.append

    def redis_gone(self: Timeline, kind: str, *args: object, **kwargs: object) -> str | None:
        if kind == "postmortem_drafted":
            raise redis.ConnectionError("Redis went away")
        return real_append(self, kind, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Timeline, "append", redis_gone)
    with pytest.raises(redis.ConnectionError):
        publish_postmortem(bot_settings, redis_client, client, incident.id, "U_ALICE", "req-1")
    monkeypatch.setattr(Timeline, "append", real_append)
    (file,) = slack.files
    calls = len(slack.calls)

    first = publish_postmortem(bot_settings, redis_client, client, incident.id, "U_ALICE", "req-1")
    again = publish_postmortem(bot_settings, redis_client, client, incident.id, "U_ALICE", "req-1")

    assert slack.calls[calls:] == [], "a finished upload needs no Slack call at all"
    assert first == again == {"file_id": file.id, "bytes": len(file.content or b"")}
    assert shared_files(slack) == [file.id]
    assert drafted(bot_settings, redis_client, incident) == [first]


def test_each_request_is_its_own_draft(slack: SlackEmulator, bot_settings: Settings, redis_client: redis.Redis,
                                       incident: Incident) -> None:
    client = SlackClient(bot_settings)
    first = publish_postmortem(bot_settings, redis_client, client, incident.id, "U_ALICE", "req-1")
    publish_postmortem(bot_settings, redis_client, client, incident.id, "U_ALICE", "req-1")
    second = publish_postmortem(bot_settings, redis_client, client, incident.id, "U_BOB", "req-2")

    assert first["file_id"] != second["file_id"]
    assert shared_files(slack) == [first["file_id"], second["file_id"]]
    assert [d["file_id"] for d in drafted(bot_settings, redis_client, incident)] == [first["file_id"],
                                                                                      second["file_id"]]
