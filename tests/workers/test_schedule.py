"""The schedule API and the tick, in process, against real Redis and the Slack emulator.

Generations, the one pending tick per incident, the at-most-once guard, Slack failures, the
PagerDuty trigger (against a local HTTP server), template overrides and escaping.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from rq.registry import ScheduledJobRegistry

from service.context import Context
from chat.client import SlackClient
from incident.clock import SystemClock
from incident.errors import SlackApiError
from incident.model import Incident, Status
from incident.settings import Settings
from sandbox.slack import SlackEmulator
from tests.fixtures.slack import STAKEHOLDER_CHANNEL
from tests.workers.test_schedule_e2e import ManualClock, PagerDutyStub
from service import paging, reminders
from service.outbox import Drainer


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock((SystemClock().now() + timedelta(days=1)).replace(second=0, microsecond=0))


@pytest.fixture()
def services(bot_settings: Settings, clock: ManualClock) -> Context:
    return Context.from_settings(bot_settings, clock=clock)


def _incident(services: Context, slack: SlackEmulator, clock: ManualClock, title: str = "API down") -> Incident:
    channel = f"C_INC{len(list(services.store.iter_all())) + 1}"
    slack.add_channel(channel, name=channel.lower(), members=[slack.bot_user_id, "U_ALICE"])
    stakeholder_ts = services.slack.post_message(STAKEHOLDER_CHANNEL, "announcement")
    incident = Incident(id=f"20261124-00{channel[-1]}", title=title, severity="sev1", channel_id=channel,
                        channel_name=channel.lower(), opened_by="U_ALICE", opened_at=clock.start, commander="U_ALICE",
                        stakeholder_ts=stakeholder_ts)
    services.store.create(incident)
    reminders.start_schedule(services.settings, services.redis, incident.id, clock=clock)
    return incident


def _at(clock: ManualClock, minute: float) -> datetime:
    return clock.start + timedelta(minutes=minute)


def _tick(services: Context, incident: Incident, clock: ManualClock, minute: float,
          generation: int | None = None) -> reminders.TickResult:
    info = reminders.schedule_info(services.settings, services.redis, incident.id)
    return reminders.run_tick(services.settings, services.redis, services.slack, incident.id,
                             info.generation if generation is None else generation, _at(clock, minute))


def _pending(services: Context) -> list[str]:
    queue = reminders.schedule_queue(services.settings, services.redis)
    return ScheduledJobRegistry(queue=queue).get_job_ids()


def _texts(slack: SlackEmulator, channel: str) -> list[str]:
    return [m["text"] for m in slack.messages(channel) if m.get("bot_id")]


def test_one_pending_tick_with_a_deterministic_id(services: Context, slack: SlackEmulator, clock: ManualClock) -> None:
    incident = _incident(services, slack, clock)
    info = reminders.schedule_info(services.settings, services.redis, incident.id)
    assert info.active and info.generation == 1 and info.next_at == _at(clock, 15)
    assert info.job_id == reminders.tick_job_id(services.keys, incident.id, 1, _at(clock, 15))
    assert _pending(services) == [info.job_id]
    for _ in range(3):
        reminders.reschedule(services.settings, services.redis, incident.id, clock=clock)
    info = reminders.schedule_info(services.settings, services.redis, incident.id)
    assert info.generation == 4 and _pending(services) == [info.job_id]
    # A tick re-evaluating at the same moment schedules the same job again: still one.
    _tick(services, incident, clock, 0)
    _tick(services, incident, clock, 0)
    assert _pending(services) == [info.job_id]


def test_ensure_schedules_heals_missing_and_dead_schedules(services: Context, slack: SlackEmulator,
                                                           clock: ManualClock) -> None:
    healthy = _incident(services, slack, clock)
    missing = _incident(services, slack, clock)
    dead = _incident(services, slack, clock)
    resolved = _incident(services, slack, clock)
    services.redis.delete(services.keys.schedule(missing.id))  # opened before reminders existed
    services.redis.hset(services.keys.schedule(dead.id), "next_at", repr(_at(clock, -30).timestamp()))
    services.store.transition(resolved.id, Status.RESOLVED, "U_ALICE")
    reminders.cancel_schedule(services.settings, services.redis, resolved.id)
    healthy_job = reminders.schedule_info(services.settings, services.redis, healthy.id).job_id
    assert sorted(reminders.ensure_schedules(services.settings, services.redis, clock=clock)) == [missing.id, dead.id]
    assert reminders.schedule_info(services.settings, services.redis, healthy.id).job_id == healthy_job
    assert reminders.schedule_info(services.settings, services.redis, missing.id).next_at == _at(clock, 15)
    assert not reminders.schedule_info(services.settings, services.redis, resolved.id).active
    assert reminders.ensure_schedules(services.settings, services.redis, clock=clock) == []


def test_stale_generation_does_nothing(services: Context, slack: SlackEmulator, clock: ManualClock) -> None:
    incident = _incident(services, slack, clock)
    old = reminders.schedule_info(services.settings, services.redis, incident.id).generation
    services.store.set_severity(incident.id, "sev3", "U_ALICE")
    reminders.reschedule(services.settings, services.redis, incident.id, clock=clock)
    assert _pending(services) == [reminders.tick_job_id(services.keys, incident.id, old + 1, _at(clock, 30))]
    result = _tick(services, incident, clock, 15, generation=old)
    assert result.stale and result.sent == []
    assert _texts(slack, incident.channel_id) == []


def test_cancel_removes_the_pending_tick(services: Context, slack: SlackEmulator, clock: ManualClock) -> None:
    incident = _incident(services, slack, clock)
    generation = reminders.schedule_info(services.settings, services.redis, incident.id).generation
    reminders.cancel_schedule(services.settings, services.redis, incident.id)
    info = reminders.schedule_info(services.settings, services.redis, incident.id)
    assert not info.active and info.job_id is None and _pending(services) == []
    assert _tick(services, incident, clock, 15, generation=generation).stale
    assert _tick(services, incident, clock, 15).stale  # even the current generation: cancelled is cancelled


def test_claimed_ping_is_not_sent_again(services: Context, slack: SlackEmulator, clock: ManualClock) -> None:
    incident = _incident(services, slack, clock)
    token = f"{incident.id}:status_prompt:{int(_at(clock, 15).timestamp())}"
    services.redis.set(services.keys.sent_once(token), "sending")  # another worker is sending it
    result = _tick(services, incident, clock, 15)
    assert result.skipped == [token] and result.sent == []
    assert _texts(slack, incident.channel_id) == []
    assert result.next_at == _at(clock, 20)  # the overdue reminder still follows


def test_concurrent_ticks_send_once(services: Context, slack: SlackEmulator, clock: ManualClock,
                                    bot_settings: Settings) -> None:
    incident = _incident(services, slack, clock)
    results: list[reminders.TickResult] = []

    def run() -> None:
        client = redis.Redis.from_url(bot_settings.redis_url)
        info = reminders.schedule_info(bot_settings, client, incident.id)
        results.append(reminders.run_tick(bot_settings, client, SlackClient(bot_settings), incident.id,
                                         info.generation, _at(clock, 15)))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(len(r.sent) for r in results) == 1
    assert len(_texts(slack, incident.channel_id)) == 1


def test_transient_slack_failure_is_retried_and_sent_once(services: Context, slack: SlackEmulator,
                                                          clock: ManualClock) -> None:
    incident = _incident(services, slack, clock)
    real_post = services.slack.post_message

    def failing_post(*args: object, **kwargs: object) -> str:
        raise SlackApiError("chat.postMessage", "internal_error")  # what the chokepoint raises once it gives up

    services.slack.post_message = failing_post  # type: ignore[method-assign]
    with pytest.raises(SlackApiError) as raised:
        _tick(services, incident, clock, 15)
    assert raised.value.code == "internal_error"  # transient: the job fails and RQ retries it
    services.slack.post_message = real_post  # type: ignore[method-assign]
    assert _texts(slack, incident.channel_id) == []
    result = _tick(services, incident, clock, 15)  # RQ's retry of the job
    assert len(result.sent) == 1 and len(_texts(slack, incident.channel_id)) == 1
    assert _tick(services, incident, clock, 15).sent == []


def test_permanent_slack_failure_is_recorded_not_retried(services: Context, slack: SlackEmulator,
                                                         clock: ManualClock) -> None:
    incident = _incident(services, slack, clock)
    slack.archive_channel(incident.channel_id)
    result = _tick(services, incident, clock, 15)
    assert len(result.sent) == 1 and result.next_at == _at(clock, 20)
    timeline = services.store.timeline(incident.id)
    assert [e.data["error"] for e in timeline.entries({"bot_error"})] == ["is_archived"]
    assert timeline.entries({"status_prompt"})[0].data["error"] == "is_archived"


def test_prompt_escapes_the_title_and_mentions_the_commander(services: Context, slack: SlackEmulator,
                                                             clock: ManualClock) -> None:
    incident = _incident(services, slack, clock, title="<!channel> payments & <@U_BOB>")
    _tick(services, incident, clock, 15)
    [text] = _texts(slack, incident.channel_id)
    assert text.startswith(":alarm_clock: <@U_ALICE> ")
    assert "&lt;!channel&gt; payments &amp; &lt;@U_BOB&gt;" in text and "<!channel>" not in text
    message = slack.messages(incident.channel_id)[-1]
    assert message["blocks"][1]["elements"][0]["action_id"] == "incident_post_update"
    assert message["blocks"][1]["elements"][0]["value"] == incident.id


def test_templates_can_be_overridden(bot_settings: Settings, slack: SlackEmulator, clock: ManualClock,
                                     tmp_path: Path) -> None:
    (tmp_path / "status_prompt.slack.j2").write_text("Update due for {{ incident.title }}, {{ incident.commander | mention }}!")
    services = Context.from_settings(bot_settings.model_copy(update={"templates_dir": tmp_path}), clock=clock)
    incident = _incident(services, slack, clock)
    _tick(services, incident, clock, 15)
    assert _texts(slack, incident.channel_id) == ["Update due for API down, <@U_ALICE>!"]


def test_stakeholder_ping_goes_to_the_incident_thread(services: Context, slack: SlackEmulator,
                                                      clock: ManualClock) -> None:
    incident = _incident(services, slack, clock)
    for minute in (15, 20, 25):
        _tick(services, incident, clock, minute)
    # The ping goes through the outbox (the stakeholder channel is the busiest): a bot's drainer sends it.
    assert Drainer(services.settings, threads=0).flush() == 1
    thread = slack.replies(STAKEHOLDER_CHANNEL, incident.stakeholder_ts or "")
    assert len(thread) == 2 and thread[-1]["text"].startswith(":hourglass_flowing_sand: *Automatic note")
    assert "no update for 25m" in thread[-1]["text"] and "No cluster assessment yet." in thread[-1]["text"]


def test_status_update_context_has_verdict_actions_and_queue(services: Context, slack: SlackEmulator,
                                                             clock: ManualClock) -> None:
    incident = _incident(services, slack, clock)
    timeline = services.store.timeline(incident.id)
    timeline.append("assessment", "bot", {"verdict": {"headline": "DNS cascade", "patterns": ["dns"]}}, at=_at(clock, 3))
    timeline.append("action", "U_BOB", {"description": "restart deployment kube-system/coredns", "outcome": "succeeded"},
                    at=_at(clock, 5))
    services.redis.rpush(services.keys.action_queue(services.settings.cluster_name), "A7")
    services.redis.hset(services.keys.action("A7"), mapping={"kind": "cordon", "target": "node-3", "status": "running",
                                                             "incident_id": incident.id})
    context = reminders.update_context(services.settings, services.redis, incident)
    assert context["verdict"] == "DNS cascade" and context["actions"] == ["restart deployment kube-system/coredns: succeeded"]
    assert context["pending"] == ["cordon node-3 (running)"] and context["next_update"] == timedelta(minutes=15)
    text = services.templates.render("status_update.slack.j2", incident=incident, text="Restarting DNS",
                                     elapsed=timedelta(minutes=6), author="U_ALICE", **context)
    assert "_Latest assessment" in text and "DNS cascade" in text
    assert "_Recent actions:_ restart deployment kube-system/coredns: succeeded" in text
    assert "_Running / next actions:_ cordon node-3 (running)" in text and "next update within 15m" in text


# --- PagerDuty --------------------------------------------------------------------------------------


def test_pagerduty_trigger_against_a_local_server() -> None:
    with PagerDutyStub() as stub:
        answer = paging.trigger_pagerduty("KEY", summary="SEV1 API down", dedup_key="I1-control_plane",
                                        source="k8s-incident-bot/prod", details={"rule": "control_plane"},
                                        events_url=stub.url)
    assert answer["status"] == "success" and answer["dedup_key"] == "I1-control_plane"
    [event] = stub.events
    assert event["routing_key"] == "KEY" and event["event_action"] == "trigger"
    assert event["payload"] == {"summary": "SEV1 API down", "source": "k8s-incident-bot/prod", "severity": "critical",
                                "custom_details": {"rule": "control_plane"}}


def test_pagerduty_refusal_and_outage_are_told_apart() -> None:
    with PagerDutyStub(status=400) as stub:
        with pytest.raises(paging.PagerDutyError, match="refused the event"):
            paging.trigger_pagerduty("BAD", summary="s", dedup_key="d", source="x", events_url=stub.url)
    with PagerDutyStub(status=503) as stub:
        with pytest.raises(paging.PagerDutyUnavailable):
            paging.trigger_pagerduty("KEY", summary="s", dedup_key="d", source="x", events_url=stub.url)
    with pytest.raises(paging.PagerDutyUnavailable, match="could not be reached"):
        paging.trigger_pagerduty("KEY", summary="s", dedup_key="d", source="x",
                               events_url="http://127.0.0.1:9/v2/enqueue", timeout=2)


def test_refused_page_is_said_in_the_channel(bot_settings: Settings, slack: SlackEmulator, clock: ManualClock) -> None:
    from pydantic import SecretStr

    settings = bot_settings.model_copy(update={"pagerduty_routing_key": SecretStr("BAD")})
    services = Context.from_settings(settings, clock=clock)
    incident = _incident(services, slack, clock)
    with PagerDutyStub(status=400) as stub:
        result = paging.run_page(settings, services.redis, services.slack, incident.id, "control_plane", "U_ALICE",
                               events_url=stub.url)
    assert result["paged"] is False
    Drainer(settings, threads=0).flush()  # the job queued its post in the outbox; a bot's drainer sends it
    [text] = _texts(slack, incident.channel_id)
    assert text.startswith(":warning: PagerDuty was not triggered for Control plane still failing")
    assert services.store.timeline(incident.id).entries({"bot_error"})[0].data["step"] == "pagerduty"


def test_page_jobs_queued_under_the_former_path_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from rq.utils import import_attribute

    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def recorded(*args: object, **kwargs: object) -> dict[str, object]:
        calls.append((args, kwargs))
        return {"paged": True}

    import workers.page

    monkeypatch.setattr(workers.page, "page_escalation", recorded)
    job_function = import_attribute("workers.schedule.page_escalation")  # how RQ resolves a stored job's name
    assert job_function("INC-1", "control_plane", "U_ALICE", events_url="http://pd") == {"paged": True}
    assert calls == [(("INC-1", "control_plane", "U_ALICE"), {"events_url": "http://pd"})]


def test_the_headers_escalate_takes_the_same_path_as_a_prompts(bot_settings: Settings, slack: SlackEmulator,
                                                                clock: ManualClock) -> None:
    """One escalation path: the header's *Escalate* announces with the prompt's template, mentions the group
    and pages PagerDuty too (rule ``by_hand``), and says so to the person."""
    from pydantic import SecretStr
    from rq import Queue

    from service import escalation

    settings = bot_settings.model_copy(update={"pagerduty_routing_key": SecretStr("KEY"),
                                               "escalation_usergroup": "S_ESC"})
    services = Context.from_settings(settings, clock=clock)
    incident = _incident(services, slack, clock)
    reply = escalation.escalate_by_hand(services, incident, "U_BOB", reason="etcd <!channel> & co")
    assert reply == "Escalation posted and recorded. PagerDuty is being triggered."
    Drainer(settings, threads=0).flush()
    [text] = _texts(slack, incident.channel_id)
    assert text.startswith(":sos: <@U_BOB> escalated *SEV1 API down*: Escalated by hand")
    assert "Reason: etcd &lt;!channel&gt; &amp; co" in text and "<!subteam^S_ESC>" in text
    [entry] = services.store.timeline(incident.id).entries({"escalated"})
    assert entry.actor == "U_BOB" and entry.data["reason"] == "etcd <!channel> & co"
    queue: Queue = reminders.schedule_queue(settings, services.redis)
    [job] = queue.get_jobs()
    assert job.func_name == "workers.page.page_escalation" and job.args[:3] == (incident.id, "by_hand", "U_BOB")
    with PagerDutyStub() as stub:
        result = paging.run_page(settings, services.redis, services.slack, incident.id, "by_hand", "U_BOB",
                                 events_url=stub.url)
    assert result == {"paged": True, "dedup_key": f"{incident.id}-by_hand"}
    assert stub.events[0]["payload"]["summary"] == f"SEV1 API down: escalated by hand (incident {incident.id})"
    Drainer(settings, threads=0).flush()
    assert _texts(slack, incident.channel_id)[-1].startswith(":pager: PagerDuty triggered for Escalated by hand")


def test_a_resolved_incident_cannot_be_escalated(services: Context, slack: SlackEmulator, clock: ManualClock) -> None:
    from incident.errors import IncidentBotError
    from service import escalation

    incident = _incident(services, slack, clock)
    resolved = services.store.transition(incident.id, Status.RESOLVED, "U_ALICE")
    with pytest.raises(IncidentBotError, match="resolved; there is nothing to escalate"):
        escalation.escalate_by_hand(services, resolved, "U_BOB")
    assert services.store.timeline(incident.id).entries({"escalated"}) == []
    assert _texts(slack, incident.channel_id) == []
