"""Reminders end to end: the Slack emulator, the production Bolt app, real Redis and real RQ workers.

Time is controlled: the bot runs on a manual clock, and each minute the test queues a tick
evaluated *as of* that minute (``at_epoch``) for a real ``rq worker`` process on the schedule
queue, then waits for it. Controlled time starts a day ahead of the wall clock, so the ticks
the jobs schedule for "later" never fire by themselves during the test; one test checks, in real
time, that RQ's scheduler does fire them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from service import lifecycle
from bot.server import BackgroundServer, build_wsgi_app
from service.context import Context
from chat.blocks import ACTION_POST_UPDATE
from chat.schedule_blocks import ACTION_ESCALATION_DISMISS, ACTION_ESCALATION_ESCALATE, ACTION_ESCALATION_SNOOZE
from incident.assessment import PatternMatch, Verdict
from incident.clock import SystemClock
from incident.model import Incident, Status
from incident.settings import Settings
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from tests.fixtures.slack import BOT_TOKEN, SIGNING_SECRET, STAKEHOLDER_CHANNEL
from service import reminders
from persistence.outbox import OutboxStore
from service.jobs import STATUS_TICK
from sandbox.waiting import poll

REPO = Path(__file__).resolve().parents[2]
ESCALATION_GROUP = "S_ESC"
ROUTING_KEY = "R0UTINGKEY0000000000000000000000"


# --- harness -------------------------------------------------------------------------------------


class ManualClock:
    """The bot's clock, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set_minute(self, minute: float) -> datetime:
        with self._lock:
            self._now = self.start + timedelta(minutes=minute)
            return self._now


def wait_for(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> Any:
    return poll(condition, timeout, what, interval=0.03)


class Workers:
    """``rq worker`` processes on the schedule queue, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path, queue: str) -> None:
        self.env, self.logs, self.queue = env, logs, queue
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *, scheduler: bool = True, burst: bool = False, fork: bool = False) -> subprocess.Popen[bytes]:
        """``fork``: RQ's default worker (a work horse forked per job, as in production); otherwise
        RQ's ``SimpleWorker``, which runs jobs in the worker process itself and so imports the job
        modules once instead of once per job — the minute-by-minute tests run ~100 jobs."""
        rq = str(Path(sys.executable).parent / "rq")
        args = [rq, "worker", "-u", self.env["REDIS_URL"], "-n", f"sched-{len(self.procs)}-{os.getpid()}"]
        args += [] if fork else ["-w", "rq.worker.SimpleWorker"]
        args += ["--with-scheduler"] if scheduler else []
        args += ["--burst"] if burst else []
        log = open(self.logs / f"worker-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen([*args, self.queue], env=self.env, cwd=self.logs, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("worker-*.log")))


class PagerDutyStub:
    """A local Events API v2 endpoint that records what it receives."""

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.events: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.events.append(body)
                answer = json.dumps({"status": "success", "message": "Event processed",
                                     "dedup_key": body.get("dedup_key")} if stub.status == 202
                                    else {"status": "invalid event", "message": "Event object is invalid",
                                          "errors": ["bad routing key"]}).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v2/enqueue"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "PagerDutyStub":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Harness:
    """The emulator, the bot on a manual clock, a worker pool and helpers to drive minutes."""

    def __init__(self, slack: SlackEmulator, settings: Settings, services: Context, clock: ManualClock,
                 workers: Workers) -> None:
        self.slack, self.settings, self.services, self.clock, self.workers = slack, settings, services, clock, workers
        self.redis: redis.Redis = services.redis
        self.incident: Incident | None = None
        self.seen: set[tuple[str, str]] = set()
        self.log: list[tuple[int, str, str]] = []

    # time
    def minute(self, minute: int) -> datetime:
        return self.clock.set_minute(minute)

    def epoch(self, minute: int) -> float:
        return (self.clock.start + timedelta(minutes=minute)).timestamp()

    # the incident
    def open(self, text: str = "incident open sev1 API down") -> Incident:
        self.slack.slash_command("U_ALICE", "C_GENERAL", text)
        self.incident = wait_for(lambda: next((i for i in self.services.store.iter_all() if i.stakeholder_ts), None),
                                 what="incident opened")
        return self.incident

    @property
    def current(self) -> Incident:
        assert self.incident is not None
        return self.services.store.get(self.incident.id)

    def info(self) -> reminders.ScheduleInfo:
        return reminders.schedule_info(self.settings, self.redis, self.current.id)

    def pending(self) -> list[str]:
        registry = ScheduledJobRegistry(queue=reminders.schedule_queue(self.settings, self.redis))
        return [job_id for job_id in registry.get_job_ids() if f"-tick-{self.current.id}-" in job_id.replace("_", "-")]

    def tick(self, minute: int, timeout: float = 30.0) -> dict[str, Any]:
        """Queue a tick as of ``minute`` for the workers and wait for its result."""
        job = reminders.tick_now(self.settings, self.redis, self.current.id, at_epoch=self.epoch(minute))
        return self.wait_job(job.id, timeout)

    def wait_job(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        def done() -> Job | None:
            job = Job.fetch(job_id, connection=self.redis)
            status = job.get_status(refresh=True)
            if status == "failed":
                raise AssertionError(f"job {job_id} failed:\n{job.latest_result().exc_string}\n{self.workers.log_tail()}")
            return job if status == "finished" else None

        try:
            job = wait_for(done, timeout, f"job {job_id}")
        except AssertionError:
            print(self.workers.log_tail())
            raise
        return dict(job.return_value() or {})

    # what Slack shows
    def bot_messages(self) -> list[tuple[str, dict[str, Any]]]:
        """Bot messages in the incident channel and the incident's stakeholder thread, in order."""
        incident = self.current
        out = [("inc", m) for m in self.slack.messages(incident.channel_id) if m.get("bot_id") or m.get("user") == self.slack.bot_user_id]
        out += [("stake", m) for m in self.slack.messages(STAKEHOLDER_CHANNEL)
                if m.get("thread_ts") == incident.stakeholder_ts or m.get("ts") == incident.stakeholder_ts]
        return sorted(out, key=lambda pair: float(pair[1]["ts"]))

    def record(self, minute: int) -> None:
        """Label the bot messages that appeared since the last call, under ``minute`` (once every queued
        post went out: announcements are sent by the outbox's drainers, after the change that queued them)."""
        outbox = OutboxStore(self.redis, self.services.keys)
        wait_for(lambda: outbox.pending() == 0, what="the outbox sent what this minute queued")
        new = [(where, message) for where, message in self.bot_messages() if (where, message["ts"]) not in self.seen]
        # Within a minute: the incident channel's posts, then the stakeholder thread's, each in posting order.
        # The outbox keeps each channel's order; between two channels there is none (Slack gives none either).
        for where, message in sorted(new, key=lambda pair: (pair[0] != "inc", float(pair[1]["ts"]))):
            self.seen.add((where, message["ts"]))
            self.log.append((minute, where, label(message["text"])))

    def prompt_ts(self, rule: str) -> str:
        incident = self.current
        return [m["ts"] for m in self.slack.messages(incident.channel_id) if label(m["text"]) == f"escalation:{rule}"][-1]

    def click(self, user: str, ts: str, action_id: str) -> None:
        response = self.slack.click_button(user, self.current.channel_id, ts, action_id)
        assert response.status == 200


LABELS = [
    (r"^:alarm_clock: ", "prompt"),
    (r"^:warning: <@\w+> the status update .* is overdue", "overdue"),
    (r"^:hourglass_flowing_sand: \*Automatic note", "ping"),
    (r"^:rotating_light: \*Escalation check — Control plane", "escalation:control_plane"),
    (r"^:rotating_light: \*Escalation check — etcd", "escalation:etcd_repair"),
    (r"^:rotating_light: \*Escalation check — Customer", "escalation:customer_facing"),
    (r"^:rotating_light: \*Escalation check — Business", "escalation:business_pressure"),
    (r"^:sos: .* escalated .*<!subteam\^S_ESC>", "escalated"),
    (r"^:pager: PagerDuty triggered", "paged"),
    (r"^:memo: \*Status update", "update"),
    (r"^:rotating_light: \*SEV\d incident opened", "announcement"),
    (r"^SEV\d incident: ", "header"),
    (r"is now \*mitigated\*", "mitigated"),
    (r"is now \*resolved\*", "resolved"),
    (r"is now \*open\*", "reopened"),
]


def label(text: str) -> str:
    for pattern, name in LABELS:
        if re.search(pattern, text, re.S):
            return name
    return "other: " + text[:40]


@pytest.fixture()
def pagerduty() -> Iterator[PagerDutyStub]:
    with PagerDutyStub() as stub:
        yield stub


@pytest.fixture()
def harness(slack: SlackEmulator, bot_settings: Settings, fake_kubeconfig: Path, tmp_path: Path,
            pagerduty: PagerDutyStub, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    slack.add_usergroup(ESCALATION_GROUP, handle="seniors", users=["U_CAROL"])
    settings = bot_settings.model_copy(update={"escalation_usergroup": ESCALATION_GROUP,
                                               "pagerduty_routing_key": SecretStr(ROUTING_KEY),
                                               "pagerduty_events_url": pagerduty.url})
    start = (SystemClock().now() + timedelta(days=1)).replace(second=0, microsecond=0)
    clock = ManualClock(start)
    services = Context.from_settings(settings, clock=clock)
    port = free_port()
    app = build_wsgi_app(settings, services)
    server = BackgroundServer(app, host="127.0.0.1", port=port, threads=8, name="bot-http").start()
    slack.request_url = f"http://127.0.0.1:{port}/slack/events"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_", "KUBE", "PAGERDUTY_",
                                                                     "ESCALATION_", "STAKEHOLDER_", "STATUS_"))}
    env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=slack.api_url,
               STAKEHOLDER_CHANNEL=STAKEHOLDER_CHANNEL, REDIS_URL=settings.redis_url, KUBECONFIG=str(fake_kubeconfig),
               ESCALATION_USERGROUP=ESCALATION_GROUP, PAGERDUTY_ROUTING_KEY=ROUTING_KEY, LOG_LEVEL="INFO",
               PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}")
    workers = Workers(env, tmp_path, services.keys.queue_name("schedule"))
    try:
        yield Harness(slack, settings, services, clock, workers)
    finally:
        workers.stop_all()
        server.stop()
        app.drain(timeout=None)  # acknowledged work and the outbox's drainers stop here, not in the next test


def assessment(harness: Harness, minute: int, headline: str, root_cause: str) -> None:
    """What the assess worker appends to the timeline: a control-plane verdict with its root cause."""
    pattern = PatternMatch("control-plane", "Control-plane failure", "cluster-wide", root_cause, (headline,),
                           ("follow the hierarchy",), root_cause=root_cause, layers=(root_cause,))
    verdict = Verdict("cluster-wide", headline, (pattern,))
    harness.services.store.timeline(harness.current.id).append(
        "assessment", "bot", {"snapshot": {"checks": []}, "verdict": verdict.to_json(), "headline": headline},
        at=harness.clock.start + timedelta(minutes=minute))


def generation_moves(harness: Harness, before: int) -> None:
    wait_for(lambda: harness.info().generation > before, what="reschedule after the change")


# --- the 90-minute SEV1 ------------------------------------------------------------------------------

SEV1_SEQUENCE = [
    (0, "inc", "header"),
    (0, "stake", "announcement"),
    (15, "inc", "prompt"),
    (20, "inc", "overdue"),
    (22, "inc", "update"),
    (22, "stake", "update"),
    (30, "inc", "escalation:control_plane"),
    (37, "inc", "prompt"),
    (42, "inc", "overdue"),
    (45, "inc", "escalation:customer_facing"),
    (46, "inc", "escalation:control_plane"),
    (47, "stake", "ping"),
    (50, "inc", "escalated"),
    (50, "inc", "paged"),
    (52, "inc", "prompt"),
    (53, "inc", "escalation:etcd_repair"),
    (54, "inc", "update"),
    (54, "stake", "update"),
    (60, "inc", "mitigated"),
    (60, "stake", "mitigated"),
    (69, "inc", "prompt"),
    (70, "inc", "update"),
    (70, "stake", "update"),
    (80, "inc", "resolved"),
    (80, "stake", "resolved"),
]


def play_sev1(h: Harness, minutes: range, *, on_minute: Callable[[int], None] | None = None) -> None:
    """The story of the planner's unit test, through Slack and real workers, minute by minute."""
    for minute in minutes:
        h.minute(minute)
        if minute == 0:
            h.open()
        elif minute == 8:
            assessment(h, 8, "etcd quorum lost; apiserver failing readyz", "etcd")
        elif minute == 22:
            before = h.info().generation
            h.slack.slash_command("U_ALICE", h.current.channel_id, "update Restoring etcd from the 03:00 snapshot")
            generation_moves(h, before)
        elif minute == 31:
            before = h.info().generation
            h.click("U_BOB", h.prompt_ts("control_plane"), ACTION_ESCALATION_SNOOZE)
            generation_moves(h, before)
        elif minute == 40:
            h.services.store.set_fields(h.current.id, {"customer_facing": "1"})
        elif minute == 48:
            before = h.info().generation
            h.click("U_ALICE", h.prompt_ts("customer_facing"), ACTION_ESCALATION_DISMISS)
            generation_moves(h, before)
        elif minute == 50:
            before = h.info().generation
            h.click("U_ALICE", h.prompt_ts("control_plane"), ACTION_ESCALATION_ESCALATE)
            generation_moves(h, before)
            wait_for(lambda: any(label(m["text"]) == "paged" for _, m in h.bot_messages()), what="PagerDuty outcome")
        elif minute == 54:  # the update through the prompt's button and the modal
            before = h.info().generation
            prompt = [m for m in h.slack.messages(h.current.channel_id) if label(m["text"]) == "prompt"][-1]
            h.click("U_ALICE", prompt["ts"], ACTION_POST_UPDATE)
            wait_for(lambda: any(v.callback_id == "status_update_modal" and v.is_open for v in h.slack.views.values()),
                     what="update modal")
            h.slack.submit_view("U_ALICE", "status_update_modal", {"update": {"text": "Backup restored; apiserver up"}})
            generation_moves(h, before)
        elif minute == 55:
            before = h.info().generation
            h.click("U_ALICE", h.prompt_ts("etcd_repair"), ACTION_ESCALATION_DISMISS)
            generation_moves(h, before)
        elif minute == 60:
            before = h.info().generation
            h.slack.slash_command("U_ALICE", h.current.channel_id, "mitigate")
            generation_moves(h, before)
        elif minute == 70:
            before = h.info().generation
            h.slack.slash_command("U_ALICE", h.current.channel_id, "update Error rates back to baseline")
            generation_moves(h, before)
        elif minute == 80:
            # What `/k8s resolve`'s validation job (workers.resolve) does once the recovery checklist
            # passes; the checklist needs a cluster, which is not what this test is about.
            lifecycle.change_status(h.services, h.current, Status.RESOLVED, "U_ALICE")
            assert not h.info().active
        if on_minute is not None:
            on_minute(minute)
        h.tick(minute)
        h.record(minute)
        # Exactly one schedule per incident while it is active; none once resolved.
        info = h.info()
        assert h.pending() == ([info.job_id] if info.active else []), (minute, h.pending(), info)


def test_ninety_minute_sev1_sends_the_exact_sequence(harness: Harness, pagerduty: PagerDutyStub) -> None:
    harness.workers.start()
    play_sev1(harness, range(0, 91))
    assert harness.log == SEV1_SEQUENCE

    incident = harness.current
    timeline = harness.services.store.timeline(incident.id)
    decisions = [(e.actor, e.data["rule"], e.data["decision"]) for e in timeline.entries({"escalation_decision"})]
    assert decisions == [("U_BOB", "control_plane", "snoozed"), ("U_ALICE", "customer_facing", "dismissed"),
                         ("U_ALICE", "control_plane", "escalated"), ("U_ALICE", "etcd_repair", "dismissed")]
    snooze = timeline.entries({"escalation_decision"})[0]
    assert snooze.data["snoozed_until"] == harness.epoch(46)

    # The prompts carry the threshold and the evidence; decided ones lost their buttons.
    prompts = {label(m["text"]): m for m in harness.slack.messages(incident.channel_id)
               if label(m["text"]).startswith("escalation:")}
    first = prompts["escalation:control_plane"]
    assert "30m after the incident started" in first["text"]
    assert "etcd quorum lost; apiserver failing readyz" in first["text"]
    assert [b["type"] for b in first["blocks"]] == ["section", "context"]
    assert "Escalated by <@U_ALICE>" in first["blocks"][1]["elements"][0]["text"]
    assert "45m" in prompts["escalation:etcd_repair"]["text"]

    # The stakeholder ping is factual: how long without update, and the last known state.
    ping = next(m for _, m in harness.bot_messages() if label(m["text"]) == "ping")
    assert "no update for 25m" in ping["text"] and "Restoring etcd from the 03:00 snapshot" in ping["text"]
    assert "etcd quorum lost" in ping["text"]

    # The human update carries the latest assessment.
    update = [m for _, m in harness.bot_messages() if label(m["text"]) == "update"][-1]
    assert "etcd quorum lost" in update["text"]

    # Escalate mentioned the group once and paged PagerDuty once, with a stable dedup key.
    assert [e["dedup_key"] for e in pagerduty.events] == [f"{incident.id}-control_plane"]
    assert pagerduty.events[0]["routing_key"] == ROUTING_KEY
    assert pagerduty.events[0]["event_action"] == "trigger"

    # Every send is on the timeline once.
    sent = [e.data["token"] for e in timeline.entries({"status_prompt", "status_overdue", "stakeholder_ping",
                                                      "escalation_prompt"})]
    assert len(sent) == len(set(sent)) == 11


def test_restart_of_redis_and_worker_mid_incident_loses_and_duplicates_nothing(
        harness: Harness, redis_server: RedisServer) -> None:
    worker = harness.workers.start()

    def restart(minute: int) -> None:
        if minute == 33:
            pending = harness.pending()
            harness.workers.stop(worker)
            redis_server.restart()
            wait_for(lambda: _pings(harness.redis), what="redis back")
            assert harness.pending() == pending, "the scheduled tick survived the restart (AOF)"
            harness.workers.start()
            # Replays of ticks already done send nothing again.
            for replay in (30, 31, 32):
                result = harness.tick(replay)
                assert result["sent"] == [], (replay, result)

    play_sev1(harness, range(0, 61), on_minute=restart)
    assert harness.log == [entry for entry in SEV1_SEQUENCE if entry[0] <= 60]


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_two_workers_with_schedulers_send_each_ping_once(harness: Harness) -> None:
    harness.workers.start(fork=True)
    harness.workers.start(fork=True)
    harness.minute(0)
    incident = harness.open()
    harness.tick(0)
    harness.record(0)
    # Both workers race on many copies of the same ticks; every ping still goes out once.
    queue = reminders.schedule_queue(harness.settings, harness.redis)
    generation = harness.info().generation
    for minute in (15, 20, 25, 30):
        jobs = [queue.enqueue(STATUS_TICK.path, incident.id, generation, at_epoch=harness.epoch(minute))
                for _ in range(4)]
        for job in jobs:
            harness.wait_job(job.id)
        harness.record(minute)
    assert harness.log == [(0, "inc", "header"), (0, "stake", "announcement"), (15, "inc", "prompt"),
                           (20, "inc", "overdue"), (25, "stake", "ping"), (30, "inc", "prompt")]
    assert len(harness.pending()) == 1


def test_rq_scheduler_fires_the_tick_in_real_time(harness: Harness) -> None:
    """No controlled time here: the tick is due two seconds from now and RQ's scheduler must run it."""
    now = SystemClock().now()
    harness.clock.start = now - timedelta(minutes=15) + timedelta(seconds=2)
    harness.minute(0)
    incident = harness.open()
    info = harness.info()
    assert info.next_at is not None and abs((info.next_at - (now + timedelta(seconds=2))).total_seconds()) < 1
    assert harness.pending() == [info.job_id]
    harness.workers.start(fork=True)
    wait_for(lambda: any(label(m["text"]) == "prompt" for _, m in harness.bot_messages()), timeout=20,
             what="the scheduled status prompt")
    fired_at = SystemClock().now()
    assert (fired_at - info.next_at).total_seconds() < 10
    # The fired tick scheduled the overdue reminder, grace (5 min) after the prompt.
    wait_for(lambda: harness.info().job_id != info.job_id, what="next tick scheduled")
    following = harness.info()
    assert following.next_at is not None
    assert timedelta(minutes=4, seconds=50) < following.next_at - info.next_at < timedelta(minutes=5, seconds=15)
    assert harness.pending() == [following.job_id]
    assert [label(m["text"]) for _, m in harness.bot_messages()].count("prompt") == 1
    assert incident.id in following.job_id


# --- bad input ---------------------------------------------------------------------------------------


def test_bad_input_leaves_the_schedule_alone(harness: Harness) -> None:
    harness.minute(0)
    slack = harness.slack
    slack.slash_command("U_ALICE", "C_GENERAL", "update all good")  # outside an incident
    wait_for(lambda: any("works inside an incident channel" in str(e.get("text")) for e in slack.ephemeral))
    assert harness.redis.keys("*schedule*") == []

    incident = harness.open()
    before = harness.info()
    response = slack.slash_command("U_ALICE", incident.channel_id, "update")  # empty text
    assert response.status == 200 and "The update text is missing" in response.body
    response = slack.slash_command("U_ALICE", incident.channel_id, "severity sev7")  # unknown severity
    assert "Unknown severity `sev7`" in response.body
    # An empty modal submission is refused in the ack and changes nothing.
    harness.minute(15)
    job = reminders.tick_now(harness.settings, harness.redis, incident.id, at_epoch=harness.epoch(15))
    harness.workers.start(burst=True)  # after the tick is queued: a burst worker stops once its queue is empty
    harness.wait_job(job.id)
    prompt = next(m for m in slack.messages(incident.channel_id) if label(m["text"]) == "prompt")
    harness.click("U_ALICE", prompt["ts"], ACTION_POST_UPDATE)
    wait_for(lambda: any(v.callback_id == "status_update_modal" and v.is_open for v in slack.views.values()))
    ack = slack.submit_view("U_ALICE", "status_update_modal", {"update": {"text": "   "}})
    assert "Write what changed" in ack.body
    time.sleep(0.3)
    after = harness.info()
    assert after.generation == before.generation and after.job_id is not None
    assert harness.services.store.timeline(incident.id).entries({"status_update", "severity_changed"}) == []


def test_escalation_buttons_refuse_double_and_late_clicks(harness: Harness) -> None:
    harness.workers.start()
    harness.minute(0)
    incident = harness.open()
    assessment(harness, 5, "apiserver unreachable", "apiserver")
    harness.minute(30)
    harness.tick(30)
    ts = harness.prompt_ts("control_plane")
    slack = harness.slack
    before = harness.info().generation
    harness.click("U_ALICE", ts, ACTION_ESCALATION_DISMISS)
    generation_moves(harness, before)
    wait_for(lambda: any("Dismissed" in str(e.get("text")) for e in slack.ephemeral), what="dismiss reply")
    # The message lost its buttons, but an old copy of it could still be clicked: nothing changes.
    count = len(slack.ephemeral)
    payload_value = f"{incident.id}|control_plane|{int(harness.epoch(30))}"
    slack.workspace.post(incident.channel_id, slack.bot_user_id, "old copy", as_bot=True, blocks=[{
        "type": "actions", "elements": [{"type": "button", "action_id": ACTION_ESCALATION_ESCALATE,
                                         "text": {"type": "plain_text", "text": "Escalate"}, "value": payload_value}]}])
    old = slack.messages(incident.channel_id)[-1]
    harness.click("U_BOB", old["ts"], ACTION_ESCALATION_ESCALATE)
    wait_for(lambda: len(slack.ephemeral) > count)
    assert "already decided" in str(slack.ephemeral[-1].get("text"))
    decisions = harness.services.store.timeline(incident.id).entries({"escalation_decision"})
    assert [(e.actor, e.data["decision"]) for e in decisions] == [("U_ALICE", "dismissed")]
    assert not any(label(m["text"]) == "escalated" for _, m in harness.bot_messages())

    # A forged value changes nothing and says why.
    slack.workspace.post(incident.channel_id, slack.bot_user_id, "forged", as_bot=True, blocks=[{
        "type": "actions", "elements": [{"type": "button", "action_id": ACTION_ESCALATION_SNOOZE,
                                         "text": {"type": "plain_text", "text": "Snooze"}, "value": "nonsense"}]}])
    count = len(slack.ephemeral)
    harness.click("U_BOB", slack.messages(incident.channel_id)[-1]["ts"], ACTION_ESCALATION_SNOOZE)
    wait_for(lambda: len(slack.ephemeral) > count)
    assert "carries no escalation prompt" in str(slack.ephemeral[-1].get("text"))
