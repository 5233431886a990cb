"""The assessment (service layer): queue it, run the 60-second checks, keep one progress message up to date,
post the verdict.

After a recovery step (``after_action``) the checks run in two phases, in the same job: first the checks
that decide the step's pattern (:func:`service.recovery.early_look`), whose early look — cleared or still
failing, marked partial — goes on top of the progress message, then the rest, and the verdict with the full
delta replaces it all as after any assessment. The early look is an edit of the progress message, so a
retried job shows it again in the same place, never twice.

:func:`request_assessment` (``/k8s assess``, the header's *Assess*) queues the job
``workers.assess.run_assessment``, which calls :func:`run_job`. As checks finish it edits the progress message in
place (``chat.update``, throttled), then replaces it with the compact verdict, posts the details in its
thread and appends the full JSON snapshot to the incident timeline (kind ``assessment``). Without a
progress message it posts one in ``channel``; with only a ``response_url`` it answers there.

Each finished check is also written to the RQ job's ``meta``. If the work horse dies mid-assessment, the
retry (same job) reports which checks the interrupted attempt had not finished, and
:func:`finalize_interrupted` turns jobs that died for good into a partial verdict that lists the
missing checks, so an interruption is never silent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from chat.assessment_blocks import detail_views, progress_view, rerun_note, verdict_view
from chat.client import SlackClient
from incident.assessment import Assessment, CheckResult
from incident.clusters import Cluster
from incident.errors import SlackApiError
from incident.settings import Settings
from incident.templates import renderer_for
from persistence.store import IncidentStore
from incident.verdict import decide
from kube.assessor import Assessor, assess
from kube.checks import CheckSpec, default_checks
from kube.client import KubeApi
from incident.model import Incident
from incident.timeline import EntryKind, assessment_payload
from persistence.connection import get_keys, get_redis
from service import inbox
from service import jobs, recovery
from service.context import Context
from service.lifecycle import Reply

log = logging.getLogger(__name__)

META_KEY = "assessment"
"""Key of the job's ``meta`` holding the progress of the current attempt."""
PROGRESS_INTERVAL_S = 1.0
"""At most one ``chat.update`` of the progress message per this many seconds."""
WORKER_STOPPED = "not finished: the worker running the assessment stopped"


@dataclass
class SlackTarget:
    """Where the assessment talks: a channel message edited in place, or a ``response_url``."""

    slack: SlackClient
    channel: str
    progress_ts: str | None = None
    response_url: str | None = None
    responses: int = 0
    """Posts made to the response_url (Slack accepts five: first progress, verdict, details)."""

    def show(self, text: str, blocks: list[Any], *, final: bool = False) -> None:
        """Show ``blocks`` in the progress message (created on first use when there is none)."""
        try:
            if self.progress_ts:
                self.slack.update_message(self.channel, self.progress_ts, text, blocks)
            elif self.response_url:
                if not final and self.responses:
                    return  # a response_url takes five posts: no running progress there
                self.responses += 1
                self.slack.respond(self.response_url, text, blocks, replace_original=True)
            else:
                self.progress_ts = self.slack.post_message(self.channel, text, blocks)
        except SlackApiError as error:
            if not final:
                log.warning("progress update failed: %s", error.code)
                return
            # The progress message is gone (deleted, channel archived…): the verdict must still land somewhere.
            if self.response_url:
                self.slack.respond(self.response_url, text, blocks, replace_original=False)
            else:
                self.progress_ts = self.slack.post_message(self.channel, text, blocks)

    def thread(self, text: str, blocks: list[Any]) -> None:
        """A reply under the progress message (or a follow-up through the response_url)."""
        try:
            if self.progress_ts:
                self.slack.post_message(self.channel, text, blocks, thread_ts=self.progress_ts)
            elif self.response_url and self.responses < 5:
                self.responses += 1
                self.slack.respond(self.response_url, text, blocks)
        except SlackApiError as error:
            log.warning("assessment details not posted: %s", error.code)


@dataclass
class AssessmentJob:
    """One run of the job, with its collaborators injected (``run_assessment`` wires the real ones)."""

    settings: Settings
    target: SlackTarget
    redis: Redis | None = None
    incident_id: str | None = None
    job: Job | None = None
    checks: tuple[CheckSpec, ...] = field(default_factory=default_checks)
    kube_factory: Callable[[Settings], KubeApi] = KubeApi.from_settings
    clock: Callable[[], float] = time.monotonic
    after_action: str | None = None
    """The recovery step (action id) this assessment follows: its verdict opens with what the step changed."""

    def run(self) -> Assessment:
        interrupted = self._previous_attempt()
        started = self.clock()
        done: list[CheckResult] = []
        last_update = [0.0]
        titles = [(spec.name, spec.title) for spec in self.checks]
        templates = renderer_for(self.settings.templates_dir)
        note = rerun_note(interrupted, templates) if interrupted else None
        self.target.show(*progress_view(self.settings.cluster_name, titles, done, 0, self.settings.assessment_budget_seconds,
                                        templates, note=note))
        self._save_progress(done, started_wall=datetime.now(timezone.utc))

        early: list[Any] = []
        """The early look's blocks once the first phase is done (after a recovery step), on top of the progress."""

        def show_progress(now: float) -> None:
            text, blocks = progress_view(self.settings.cluster_name, titles, done, now - started,
                                         self.settings.assessment_budget_seconds, templates, note=note)
            self.target.show(text, [*early, *blocks])

        def on_check_done(result: CheckResult) -> None:
            done.append(result)
            self._save_progress(done)
            now = self.clock()
            if now - last_update[0] >= PROGRESS_INTERVAL_S or len(done) == len(titles):
                last_update[0] = now
                show_progress(now)

        try:
            look = recovery.early_look(self.settings, self.redis, self.incident_id, self.after_action)
        except Exception:  # noqa: BLE001 - without its early look the assessment still runs whole
            log.exception("no early look after action %s", self.after_action)
            look = None

        def on_first(results: list[CheckResult]) -> None:
            assert look is not None
            early[:] = look.blocks(self.settings, results)
            last_update[0] = now = self.clock()
            show_progress(now)  # an edit of the progress message: shown once however often the job runs
            self._save_progress(done, early_s=now - started)

        first = look.checks if look is not None else ()
        kube = self.kube_factory(self.settings)
        try:
            assessment = Assessor.from_settings(self.settings, kube, self.checks).run(
                on_check_done, first=first, on_first=on_first if look is not None else None)
        finally:
            _close_later(kube)
        assessment.interrupted = interrupted
        publish(self.settings, self.target, assessment, self.redis, self.incident_id, after_action=self.after_action)
        self._save_progress(done, finished=True)
        return assessment

    # -- progress in the job's meta ----------------------------------------------------------------

    def _previous_attempt(self) -> dict[str, Any] | None:
        if self.job is None:
            return None
        state = self.job.meta.get(META_KEY)
        if not isinstance(state, dict) or state.get("finished"):
            return None
        if not self.target.progress_ts and state.get("progress_ts"):
            self.target.progress_ts = state["progress_ts"]
        return interruption(state)

    def _save_progress(self, done: list[CheckResult], *, finished: bool = False, started_wall: datetime | None = None,
                       early_s: float | None = None) -> None:
        if self.job is None:
            return
        state = dict(self.job.meta.get(META_KEY) or {}) if started_wall is None else {}
        if started_wall is not None:
            state.update(started_at=started_wall.isoformat(), attempt=int((self.job.meta.get(META_KEY) or {}).get("attempt", 0)) + 1)
        state.update(
            channel=self.target.channel, progress_ts=self.target.progress_ts, response_url=self.target.response_url,
            incident_id=self.incident_id, checks=[[spec.name, spec.title] for spec in self.checks],
            results=[result.to_json() for result in done], finished=finished,
        )
        if early_s is not None:
            state["early_s"] = round(early_s, 3)  # the early look after a recovery step was shown this long in
        self.job.meta[META_KEY] = state
        try:
            self.job.save_meta()
        except Exception:  # noqa: BLE001 - progress bookkeeping must not fail the assessment
            log.exception("could not save assessment progress")


def interruption(state: dict[str, Any], reason: str = "the worker stopped mid-assessment") -> dict[str, Any]:
    """What an interrupted attempt had and had not finished, from its saved progress."""
    finished = [str(r.get("name")) for r in state.get("results") or []]
    missing = [str(name) for name, _ in state.get("checks") or [] if name not in finished]
    return {"reason": reason, "started_at": state.get("started_at"), "attempt": state.get("attempt"),
            "finished": finished, "missing": missing}


def publish(settings: Settings, target: SlackTarget, assessment: Assessment, redis: Redis | None,
            incident_id: str | None, *, after_action: str | None = None) -> str | None:
    """Replace the progress message with the verdict and its recovery plan (:mod:`service.recovery`), post the
    details, save the snapshot under the plan's ref; returns the entry id."""
    from observability import metrics

    threaded = bool(target.progress_ts or not target.response_url)
    ref = recovery.new_ref()
    before, plan = recovery.verdict_extras(settings, redis, incident_id, assessment, ref, after_action)
    templates = renderer_for(settings.templates_dir)
    target.show(*verdict_view(assessment, templates, details_in_thread=threaded, before=before, plan=plan), final=True)
    for pattern in assessment.verdict.patterns or ():
        metrics.record_verdict(pattern.key, assessment.verdict.scope)
    if not assessment.verdict.patterns:
        metrics.record_verdict("none", assessment.verdict.scope)
    for text, blocks in detail_views(assessment, templates):
        target.thread(text, blocks)
    if redis is None or not incident_id:
        return None
    timeline = IncidentStore(redis, get_keys(settings)).timeline(incident_id)
    return timeline.append(EntryKind.ASSESSMENT, "bot", assessment_payload(
        assessment, progress_ts=target.progress_ts, channel=target.channel, ref=ref, after_action=after_action))


def _close_later(kube: KubeApi) -> None:
    import threading

    threading.Thread(target=kube.close, name="kube-close", daemon=True).start()


def job_result(assessment: Assessment, target: SlackTarget) -> dict[str, Any]:
    verdict = assessment.verdict
    return {
        "scope": verdict.scope, "headline": verdict.headline, "patterns": [p.key for p in verdict.patterns],
        "checks": {check.name: check.status for check in assessment.checks},
        "unchecked": [u.check for u in verdict.unchecked], "duration_s": round(assessment.duration_s, 3),
        "channel": target.channel, "progress_ts": target.progress_ts, "interrupted": assessment.interrupted,
    }


def request_assessment(services: Context, incident: Incident | None, channel_id: str, user_id: str,
                       cluster: Cluster | None = None) -> Reply:
    """Queue an assessment of ``cluster`` whose result goes to ``channel_id`` (the incident's, when there is one).

    The bot never talks to the cluster itself: the job edits the progress message posted here. An agent
    cluster whose agent is not seen is answered at once (:func:`service.fleet.require_reachable`).
    """
    from service import fleet

    cluster = cluster or fleet.cluster_for(services, channel_id, incident)
    fleet.require_reachable(services, cluster)
    target = incident.channel_id if incident else channel_id
    progress_ts = services.slack.post_message(target, services.templates.render(
        "assessment_requested.slack.j2", user_id=user_id, cluster=cluster), post_id=inbox.effect_id("progress"),
        look_first=inbox.replaying())  # a replay after a crash finds its first run's message, job and entry
    job_id, queued = inbox.job_once(services.redis)
    if not queued:
        jobs.enqueue(services.settings, jobs.ASSESSMENT, incident.id if incident else None, target,
                     redis=services.redis, progress_ts=progress_ts, job_id=job_id,
                     timeout=int(services.settings.assessment_budget_seconds) + 60, meta={"requested_by": user_id},
                     on_cluster=cluster.name, cluster=cluster.name)
    if incident is not None:
        services.store.timeline(incident.id).append(EntryKind.ASSESSMENT_REQUESTED, user_id, {"progress_ts": progress_ts},
                                                    at=services.clock.now(), dedupe=inbox.effect_id("timeline"))
    return Reply("")


def assess_now(settings: Settings, on_check_done: Callable[[CheckResult], None] | None = None) -> Assessment:
    """Run the assessment in this process, nothing posted (``k8s-incident-bot assess``)."""
    return assess(settings, on_check_done=on_check_done)


class OutboxTarget:
    """Where a process without a Slack token (a cluster's agent) shows an assessment: the durable outbox.

    The same messages as :class:`SlackTarget`, queued instead of sent: the progress and then the verdict
    replace the request message in place (outbox edits, in order in the channel's FIFO), the details go
    in its thread. The bot's drainers send them.
    """

    def __init__(self, services: Context, channel: str, progress_ts: str | None = None) -> None:
        self.services, self.channel, self.progress_ts = services, channel, progress_ts
        self.response_url: str | None = None

    def show(self, text: str, blocks: list[Any], *, final: bool = False) -> None:
        if self.progress_ts:
            self.services.outbox.update(self.channel, self.progress_ts, text, blocks)
        elif final:
            self.services.outbox.post(self.channel, text, blocks)

    def thread(self, text: str, blocks: list[Any]) -> None:
        self.services.outbox.post(self.channel, text, blocks, thread_ts=self.progress_ts)


class QuietTarget:
    """One cluster of a fleet run (``/k8s assess --cluster all``): nothing posted, the matrix says it all."""

    def __init__(self, channel: str) -> None:
        self.channel, self.progress_ts, self.response_url = channel, None, None

    def show(self, text: str, blocks: list[Any], *, final: bool = False) -> None:
        return None

    def thread(self, text: str, blocks: list[Any]) -> None:
        return None


def run_routed(services: Context, incident_id: str | None, channel: str, *, progress_ts: str | None = None,
               response_url: str | None = None, cluster: str | None = None,
               fleet_run: str | None = None, after_action: str | None = None) -> dict[str, Any]:
    """The assessment job of one cluster: its settings, its target (Slack, the outbox, or a fleet row)."""
    from incident.clusters import load_registry
    from service import fleet

    settings = load_registry(services.settings).settings_for(services.settings, cluster) if cluster else services.settings
    target: Any
    if fleet_run:
        target = QuietTarget(channel)
    elif services.settings.slack_bot_token is None:
        target = OutboxTarget(services, channel, progress_ts)
    else:
        target = SlackTarget(services.slack, channel, progress_ts, response_url)
    assessment = AssessmentJob(settings, target, services.redis, None if fleet_run else incident_id,
                               get_current_job(), after_action=after_action).run()
    summary = job_result(assessment, target)
    fleet.record_verdict(services, settings.cluster_name, {"scope": summary["scope"], "headline": summary["headline"]})
    if fleet_run:
        fleet.add_fleet_row(services, fleet_run, settings.cluster_name, {
            "scope": summary["scope"], "headline": summary["headline"], "patterns": summary["patterns"],
            "duration_s": summary["duration_s"]})
    return summary


def run_job(settings: Settings, slack: SlackClient, redis: Redis, incident_id: str | None, channel: str, *,
            progress_ts: str | None = None, response_url: str | None = None,
            after_action: str | None = None) -> dict[str, Any]:
    """The body of the assessment job; returns a short summary of the result."""
    target = SlackTarget(slack, channel, progress_ts, response_url)
    job = AssessmentJob(settings, target, redis, incident_id, get_current_job(), after_action=after_action)
    return job_result(job.run(), target)


# -- jobs whose work horse died for good -------------------------------------------------------------


def partial_assessment(settings: Settings, state: dict[str, Any], reason: str) -> Assessment:
    """The assessment an interrupted attempt leaves: its finished checks, the rest as not finished."""
    results = [CheckResult.from_json(r) for r in state.get("results") or []]
    finished = {r.name for r in results}
    for name, title in state.get("checks") or []:
        if name not in finished:
            results.append(CheckResult(name, "error", WORKER_STOPPED, {}, 0.0, title))
    order = {name: index for index, (name, _) in enumerate(state.get("checks") or [])}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    started = datetime.fromisoformat(state["started_at"]) if state.get("started_at") else datetime.now(timezone.utc)
    ran_for = max((r.duration_s for r in results), default=0.0)  # until the last check it saw finish
    assessment = Assessment(settings.cluster_name, started, started + timedelta(seconds=ran_for),
                            settings.assessment_budget_seconds, results, decide(results))
    assessment.interrupted = interruption(state, reason)
    return assessment


def finalize_interrupted(settings: Settings, slack: SlackClient | None = None, redis: Redis | None = None) -> list[str]:
    """Post a partial verdict for every assessment job that died without finishing; returns their job ids.

    Call it from a worker's startup or a periodic schedule. Jobs still to be retried are left alone.
    """
    redis = redis or get_redis(settings)
    queue = jobs.get_queue(settings, jobs.ASSESSMENT.queue, redis)
    StartedJobRegistry(queue=queue).cleanup()  # moves jobs of dead workers to the failed registry
    clients: list[SlackClient] = [slack] if slack is not None else []

    def target_for(job: Job, state: dict[str, Any]) -> SlackTarget:
        if not clients:
            clients.append(SlackClient(settings))
        return SlackTarget(clients[0], str(state.get("channel")), state.get("progress_ts"), state.get("response_url"))

    return finalize_failed(settings, queue, redis, target_for, "the worker running it stopped")


def finalize_failed(settings: Settings, queue: Queue, redis: Redis, target_for: Callable[[Job, dict[str, Any]], Any],
                    reason: str, then: Callable[[Job, Assessment], None] | None = None) -> list[str]:
    """The partial verdict of every unfinished assessment job in ``queue``'s failed registry, once each; returns
    their ids. ``target_for(job, state)`` is where it goes; ``then(job, assessment)`` runs after it is published."""
    finalized = []
    for job_id in FailedJobRegistry(queue=queue).get_job_ids():
        job = Job.fetch(job_id, connection=redis) if Job.exists(job_id, connection=redis) else None
        if job is None or job.func_name != jobs.ASSESSMENT.path:
            continue
        state = job.meta.get(META_KEY)
        if not isinstance(state, dict) or state.get("finished") or state.get("finalized"):
            continue
        assessment = partial_assessment(settings, state, reason)
        publish(settings, target_for(job, state), assessment, redis, state.get("incident_id"))
        if then is not None:
            then(job, assessment)
        state["finalized"] = True
        job.meta[META_KEY] = state
        job.save_meta()
        finalized.append(job_id)
    return finalized
