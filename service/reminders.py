"""Status cadence and escalation reminders (service layer): one self-rescheduling tick job per incident.

**Why RQ's own scheduler** (``Queue.enqueue_at`` with workers started ``--with-scheduler``, see
``workers/run.py``) rather than rq-scheduler: it is built into the RQ we already run, so there is
no extra package or process; scheduled jobs live in RQ's ``ScheduledJobRegistry`` — a Redis
sorted set — so Redis with AOF keeps them across restarts of the bot, the workers and Redis
itself; and each worker's scheduler takes a per-queue lock, so several workers never move the
same job twice. What RQ does not give — one schedule per incident, no ping twice — is here:

* **One tick per incident.** The tick job (``workers.schedule.status_tick`` → :func:`run_tick`) evaluates the pure planner
  (:func:`incident.cadence.plan`) on the incident's timeline, sends what is due and schedules the
  next tick at ``Plan.next_at`` under a deterministic job id (``<prefix>-tick-<incident>-g<gen>-<epoch>``),
  replacing the pending one, so re-scheduling is idempotent.
* **Generations.** The schedule hash (``Keys.schedule``) holds a generation counter bumped by
  :func:`reschedule` (severity change, update, decision) and :func:`cancel_schedule` (resolve),
  which also remove the pending job. A tick of an older generation does nothing.
* **At most once per ping.** Every send first claims ``SET Keys.sent_once(token) NX`` with a
  lease, where the token is ``<incident>:<kind>[:<rule>]:<cycle epoch>``; the send is then
  recorded on the timeline (deduplicated by the same token) and the marker made permanent. Two
  schedulers, a replayed job or a retry after a crash therefore never post the same ping twice.
* **Serialized per incident.** Ticks and schedule changes of one incident take
  ``Keys.schedule_lock``; a tick that cannot get it fails and RQ retries it.

All state is in Redis (timeline, schedule hash, markers, RQ registries): nothing is lost when a
process restarts. Slack posting happens only inside the jobs; the bot only calls
:func:`start_schedule` / :func:`reschedule` / :func:`cancel_schedule`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from chat.client import SlackClient
from chat.schedule_blocks import PromptRef, escalation_prompt_blocks, status_prompt_blocks, text_blocks
from incident.cadence import DIGEST_KINDS, CadencePolicy, Digest, Notice, NoticeKind, digest, plan, record_sent
from incident.clock import Clock, SystemClock, from_epoch
from incident.errors import IncidentBotError, IncidentNotFound, SlackApiError, error_text
from persistence.keys import Keys
from incident.model import Incident
from incident.settings import Settings
from persistence.store import IncidentStore
from incident.templates import TemplateRenderer, renderer_for
from persistence.connection import get_keys
from incident.timeline import EntryKind
from service import jobs
from service.context import Context

log = logging.getLogger(__name__)
T = TypeVar("T")

CLAIM_LEASE_SECONDS = 300
"""A claimed send not confirmed within this lease (the sender died) may be sent by a later tick."""
SENT_TTL_SECONDS = 30 * 24 * 3600
LOCK_LEASE_SECONDS = 120
LOCK_WAIT_SECONDS = 20
TRANSIENT_SLACK_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
                          "timeout", "connection_error", "unknown_error"}
"""Slack failures after which the tick job fails and RQ retries it; any other error is recorded and skipped."""


class ScheduleBusy(IncidentBotError):
    """Another tick or schedule change of this incident holds the lock; RQ retries the job."""


@dataclass(frozen=True)
class ScheduleInfo:
    """The schedule hash of one incident."""

    generation: int = 0
    job_id: str | None = None
    next_at: datetime | None = None
    active: bool = False


@dataclass
class TickResult:
    """What one tick did (the job's return value, for logs and tests)."""

    stale: bool = False
    sent: list[str] = field(default_factory=list)
    """Tokens sent by this tick."""
    skipped: list[str] = field(default_factory=list)
    """Tokens due but already claimed by another tick."""
    next_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stale": self.stale, "sent": self.sent, "skipped": self.skipped,
                "next_at": self.next_at.timestamp() if self.next_at else None}


# --- the schedule API (bot side) ------------------------------------------------------------------


def schedule_queue(settings: Settings, redis: Redis) -> Queue:
    """The RQ queue of tick and page jobs (to find and drop a pending tick)."""
    return jobs.get_queue(settings, jobs.STATUS_TICK.queue, redis)


def schedule_info(settings: Settings, redis: Redis, incident_id: str) -> ScheduleInfo:
    """The current generation, pending job and next tick of an incident."""
    raw = redis.hgetall(get_keys(settings).schedule(incident_id))
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return ScheduleInfo(
        generation=int(data.get("generation", 0)),
        job_id=data.get("job_id") or None,
        next_at=from_epoch(float(data["next_at"])) if data.get("next_at") else None,
        active=data.get("state") == "active",
    )


def _quietly(work: Callable[[], T], what: str, incident_id: str, quiet: bool) -> T | None:
    """Run a schedule change; with ``quiet`` (lifecycle hooks) a failure is logged, not raised,
    so the state change the person asked for is never reported as failed because of a reminder."""
    if not quiet:
        return work()
    try:
        return work()
    except Exception:  # noqa: BLE001 - reminders must never break the lifecycle
        log.exception("incident %s: could not %s the reminder schedule", incident_id, what)
        return None


def start_schedule(settings: Settings, redis: Redis, incident_id: str, *, clock: Clock | None = None,
                   quiet: bool = False) -> datetime | None:
    """Start reminding for a new (or reopened) incident; returns the first tick's time."""
    return _quietly(lambda: _reschedule(settings, redis, incident_id, clock), "start", incident_id, quiet)


def reschedule(settings: Settings, redis: Redis, incident_id: str, *, clock: Clock | None = None,
               quiet: bool = False) -> datetime | None:
    """New generation: drop the pending tick and schedule one at the planner's next due time.

    Called after anything that changes what is due (update, severity, status, a decision).
    Returns the next tick's time (``None`` for a resolved incident, whose schedule is cancelled).
    """
    return _quietly(lambda: _reschedule(settings, redis, incident_id, clock), "reschedule", incident_id, quiet)


def _reschedule(settings: Settings, redis: Redis, incident_id: str, clock: Clock | None) -> datetime | None:
    keys = get_keys(settings)
    now = (clock or SystemClock()).now()
    with _incident_lock(redis, keys, incident_id):
        store = IncidentStore(redis, keys)
        incident = store.get(incident_id)
        policy = CadencePolicy.from_settings(settings)
        result = plan(policy, _digest(store, incident).state, now)
        generation = int(redis.hincrby(keys.schedule(incident_id), "generation", 1))
        if result.next_at is None and not result.due:
            _cancel_locked(settings, redis, keys, incident_id)
            return None
        due = now if result.due else result.next_at
        assert due is not None
        _put_next(settings, redis, keys, incident_id, generation, due)
        return due


def cancel_schedule(settings: Settings, redis: Redis, incident_id: str, *, quiet: bool = False) -> None:
    """Stop every reminder of an incident: bump the generation and remove the pending tick."""
    keys = get_keys(settings)

    def cancel() -> None:
        with _incident_lock(redis, keys, incident_id):
            redis.hincrby(keys.schedule(incident_id), "generation", 1)
            _cancel_locked(settings, redis, keys, incident_id)

    _quietly(cancel, "cancel", incident_id, quiet)


def ensure_schedules(settings: Settings, redis: Redis, *, clock: Clock | None = None,
                     overdue: timedelta = timedelta(minutes=5)) -> list[str]:
    """Start the schedule of every active incident that has none, or whose tick is long overdue
    (its job exhausted its retries, or the incident predates the reminders); returns their ids.

    Safe to run at every start of the bot or a worker: healthy schedules are left alone.
    """
    now = (clock or SystemClock()).now()
    started = []
    for incident in IncidentStore(redis, get_keys(settings)).active():
        info = schedule_info(settings, redis, incident.id)
        if info.active and info.next_at is not None and info.next_at > now - overdue:
            continue
        if reschedule(settings, redis, incident.id, clock=clock, quiet=True) is not None:
            started.append(incident.id)
    return started


def tick_now(settings: Settings, redis: Redis, incident_id: str, *, at_epoch: float | None = None) -> Job:
    """Queue an immediate tick of the current generation (``at_epoch``: evaluate as of that time)."""
    info = schedule_info(settings, redis, incident_id)
    suffix = f"at{int(at_epoch)}" if at_epoch is not None else "now"
    job_id = schedule_job_id(get_keys(settings), f"tick-{incident_id}-g{info.generation}-{suffix}")
    return jobs.enqueue(settings, jobs.STATUS_TICK, incident_id, info.generation, at_epoch=at_epoch, job_id=job_id,
                        redis=redis)


def tick_job_id(keys: Keys, incident_id: str, generation: int, due: datetime) -> str:
    """The deterministic id of the scheduled tick of a generation at a time."""
    return schedule_job_id(keys, f"tick-{incident_id}-g{generation}-{int(due.timestamp())}")


def schedule_job_id(keys: Keys, rest: str) -> str:
    """The id of a job on the schedule queue: ``<prefix>-<rest>``, with characters RQ ids may not hold as ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{keys.prefix}-{rest}")


@contextmanager
def _incident_lock(redis: Redis, keys: Keys, incident_id: str) -> Iterator[None]:
    lock = redis.lock(keys.schedule_lock(incident_id), timeout=LOCK_LEASE_SECONDS, blocking_timeout=LOCK_WAIT_SECONDS)
    if not lock.acquire():
        raise ScheduleBusy(error_text("schedule_busy", incident_id=incident_id))
    try:
        yield
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - the lease expired; the next holder is fine
            log.warning("schedule lock of %s expired before release", incident_id)


def _put_next(settings: Settings, redis: Redis, keys: Keys, incident_id: str, generation: int, due: datetime) -> str:
    """Make the tick at ``due`` the incident's only pending tick (idempotent for the same time).

    The new tick is queued before the previous one is dropped, so a crash in between leaves two ticks
    (the older generation's is ignored when it fires), never none.
    """
    queue = schedule_queue(settings, redis)
    job_id = tick_job_id(keys, incident_id, generation, due)
    previous = schedule_info(settings, redis, incident_id).job_id
    jobs.enqueue_at(settings, jobs.STATUS_TICK, due, incident_id, generation, job_id=job_id, redis=redis)
    redis.hset(keys.schedule(incident_id), mapping={
        "generation": generation, "job_id": job_id, "next_at": repr(due.timestamp()), "state": "active"})
    if previous and previous != job_id:
        _drop_pending(queue, redis, previous)
    return job_id


def _drop_pending(queue: Queue, redis: Redis, job_id: str) -> None:
    """Remove a tick still waiting in the scheduled registry (a running or queued one is left alone)."""
    if ScheduledJobRegistry(queue=queue).remove(job_id):
        try:
            Job.fetch(job_id, connection=redis).delete()
        except NoSuchJobError:
            pass


def _cancel_locked(settings: Settings, redis: Redis, keys: Keys, incident_id: str) -> None:
    previous = schedule_info(settings, redis, incident_id).job_id
    if previous:
        _drop_pending(schedule_queue(settings, redis), redis, previous)
    redis.hset(keys.schedule(incident_id), "state", "cancelled")
    redis.hdel(keys.schedule(incident_id), "job_id", "next_at")


def _digest(store: IncidentStore, incident: Incident) -> Digest:
    return digest(incident, store.timeline(incident.id).iter_entries(set(DIGEST_KINDS)))


# --- one tick (the body of the workers.schedule.status_tick job) ------------------------------------------------------------------------------


def run_tick(settings: Settings, redis: Redis, slack: SlackClient, incident_id: str, generation: int,
             now: datetime) -> TickResult:
    """One evaluation of an incident's schedule (the body of the ``status_tick`` job)."""
    keys = get_keys(settings)
    result = TickResult()
    with _incident_lock(redis, keys, incident_id):
        info = schedule_info(settings, redis, incident_id)
        if generation != info.generation or not info.active:
            log.info("tick of %s generation %s is stale (current %s)", incident_id, generation, info.generation)
            result.stale = True
            return result
        store = IncidentStore(redis, keys)
        try:
            incident = store.get(incident_id)
        except IncidentNotFound:
            _cancel_locked(settings, redis, keys, incident_id)
            result.stale = True
            return result
        policy = CadencePolicy.from_settings(settings)
        facts = _digest(store, incident)
        sender = _Sender(settings, redis, keys, slack, renderer_for(settings.templates_dir), store, incident, facts,
                         policy, now)
        state = facts.state
        current = plan(policy, state, now)
        for _ in range(len(NoticeKind) + len(policy.rules)):
            if not current.due:
                break
            for notice in current.due:
                token = notice.token(incident_id)
                (result.sent if sender.send_once(notice, token, state) else result.skipped).append(token)
                state = record_sent(state, notice, now)
            current = plan(policy, state, now)
        result.next_at = current.next_at
        if current.next_at is None:
            _cancel_locked(settings, redis, keys, incident_id)
        else:
            _put_next(settings, redis, keys, incident_id, generation, max(current.next_at, now))
    return result


class _Sender:
    """Renders and posts one notice, at most once per token."""

    def __init__(self, settings: Settings, redis: Redis, keys: Keys, slack: SlackClient, templates: TemplateRenderer,
                 store: IncidentStore, incident: Incident, facts: Digest, policy: CadencePolicy, now: datetime) -> None:
        self.settings, self.redis, self.keys, self.slack, self.templates = settings, redis, keys, slack, templates
        self.store, self.incident, self.facts, self.policy, self.now = store, incident, facts, policy, now

    def send_once(self, notice: Notice, token: str, state: Any) -> bool:
        marker = self.keys.sent_once(token)
        if not self.redis.set(marker, "sending", nx=True, ex=CLAIM_LEASE_SECONDS):
            return False
        record: dict[str, Any] = {"token": token, "due": notice.due.timestamp(), "anchor": notice.anchor.timestamp()}
        if notice.rule is not None:
            record["rule"] = notice.rule.key
        try:
            record.update(self._deliver(notice, state))
        except SlackApiError as error:
            if error.code in TRANSIENT_SLACK_ERRORS:
                self.redis.delete(marker)  # let the retry of this job send it
                raise
            log.warning("incident %s: %s not delivered: %s", self.incident.id, notice.kind.value, error.code)
            record["error"] = error.code
            self.store.timeline(self.incident.id).append(EntryKind.BOT_ERROR, "bot", {"step": notice.kind.value, "error": error.code},
                                                         at=self.now)
        except Exception:
            self.redis.delete(marker)
            raise
        self.store.timeline(self.incident.id).append(EntryKind(notice.kind.value), "bot", record, at=self.now, dedupe=token)
        self.redis.set(marker, "sent", ex=SENT_TTL_SECONDS)
        return True

    def _context(self, state: Any) -> dict[str, Any]:
        facts, incident, now = self.facts, self.incident, self.now
        last_update_at = state.last_update_at
        return {
            "incident": incident, "now": now, "elapsed": now - incident.opened_at,
            "since_update": now - (last_update_at or incident.opened_at), "last_update_at": last_update_at,
            "last_update": facts.last_update_text, "last_update_by": facts.last_update_by,
            "since_prompt": now - state.last_prompt_at if state.last_prompt_at else timedelta(0),
            "cadence": self.policy.cadence_for(incident.severity), "grace": self.policy.grace,
            "verdict": facts.evidence.verdict, "assessed_at": facts.evidence.assessed_at,
            "actions": list(facts.actions), "probes_off": dict(facts.probes_off),
        }

    def _deliver(self, notice: Notice, state: Any) -> dict[str, Any]:
        incident, context = self.incident, self._context(state)
        if notice.kind in (NoticeKind.STATUS_PROMPT, NoticeKind.STATUS_OVERDUE):
            text = self.templates.render(f"{notice.kind.value}.slack.j2", **context)
            ts = self.slack.post_message(incident.channel_id, text, status_prompt_blocks(
                text, incident.id, self.templates, kind=notice.kind.value))
            return {"channel": incident.channel_id, "ts": ts}
        if notice.kind == NoticeKind.STAKEHOLDER_PING:
            channel = self.settings.stakeholder_channel
            if not channel:
                return {"skipped": "STAKEHOLDER_CHANNEL is not set"}
            text = self.templates.render("stakeholder_ping.slack.j2", **context)
            # Through the outbox: the stakeholder channel is the busiest (every incident's updates), and a
            # tick must not sleep on its Retry-After; the post is sent by the bot's drainers.
            post_id = Context(settings=self.settings, redis=self.redis, slack_client=self.slack).outbox.post(
                channel, text, text_blocks(text), incident_id=incident.id, in_stakeholder_thread=True)
            return {"channel": channel, "post_id": post_id, "thread_ts": incident.stakeholder_ts, "queued": True}
        assert notice.rule is not None
        since = state.signals.get(notice.rule.signal)
        text = self.templates.render("escalation_prompt.slack.j2", mode="prompt", rule=notice.rule, since=since,
                                     threshold_at=notice.due, **context)
        ref = PromptRef(incident.id, notice.rule.key, int(notice.anchor.timestamp()))
        blocks = escalation_prompt_blocks(text, ref, self.templates,
                                          snooze_minutes=int(self.policy.snooze.total_seconds() // 60))
        ts = self.slack.post_message(incident.channel_id, text, blocks)
        return {"channel": incident.channel_id, "ts": ts, "verdict": self.facts.evidence.verdict}


# --- status update context (for the human update) --------------------------------------------------


def update_context(settings: Settings, redis: Redis, incident: Incident) -> dict[str, Any]:
    """What the status update template adds to the commander's text: verdict, actions, next update."""
    keys = get_keys(settings)
    policy = CadencePolicy.from_settings(settings)
    facts = _digest(IncidentStore(redis, keys), incident)
    return {
        "verdict": facts.evidence.verdict, "assessed_at": facts.evidence.assessed_at, "actions": list(facts.actions),
        "pending": pending_actions(redis, keys, settings.cluster_name, incident.id),
        "next_update": policy.cadence_for(incident.severity) if incident.is_active else None,
    }


def pending_actions(redis: Redis, keys: Keys, cluster: str, incident_id: str, limit: int = 3) -> list[str]:
    """Running and waiting risky actions of the cluster's action queue (``kind target (status)``)."""
    out = []
    for raw in redis.lrange(keys.action_queue(cluster), 0, limit - 1):
        data = {k.decode(): v.decode() for k, v in redis.hgetall(keys.action(raw.decode())).items()}
        if not data or data.get("incident_id") not in ("", None, incident_id):
            continue
        out.append(f"{data.get('kind', 'action')} {data.get('target', '')} ({data.get('status', 'queued')})")
    return out
