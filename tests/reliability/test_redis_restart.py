"""Redis restarted (AOF) in the middle of an incident: state, timeline and schedule survive, nothing doubles,
and the running bot carries on without a restart of its own."""

from __future__ import annotations

from rq import Queue
from rq.registry import ScheduledJobRegistry

from sandbox.redis_server import RedisServer
from service.reminders import schedule_info
from sandbox.slack import SlackEmulator
from tests.bot.helpers import open_incident, wait_until
from tests.fixtures.slack import RunningBot


def test_incident_survives_a_redis_restart(slack: SlackEmulator, bot_server: RunningBot,
                                           redis_server: RedisServer) -> None:
    services = bot_server.services
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 API down")
    incident = open_incident(slack, bot_server)
    for i in range(5):
        slack.post_message_as_user("U_BOB", incident.channel_id, f"observation {i}")
    slack.slash_command("U_ALICE", incident.channel_id, "update failing over")
    timeline = services.store.timeline(incident.id)
    wait_until(lambda: len(timeline.entries({"message"})) == 5 and timeline.entries({"status_update"}))
    before = [(e.kind, e.data.get("ts")) for e in timeline.entries()]
    registry = ScheduledJobRegistry(queue=Queue(services.keys.queue_name("schedule"), connection=services.redis))
    # The update's reschedule (generation 2; the open was 1) runs after its timeline entry is written.
    def rescheduled_once_more() -> bool:
        info = schedule_info(services.settings, services.redis, incident.id)
        return info.generation == 2 and registry.get_job_ids() == [info.job_id]
    wait_until(rescheduled_once_more)
    scheduled_before = registry.get_job_ids()
    assert len(scheduled_before) == 1  # the incident's next status tick

    services.redis.config_set("appendfsync", "always")
    redis_server.restart()

    assert [(e.kind, e.data.get("ts")) for e in timeline.entries()] == before
    assert services.store.get(incident.id) == incident.__class__.from_hash(
        services.redis.hgetall(services.keys.incident(incident.id)))
    scheduled_after = registry.get_job_ids()
    assert scheduled_after == scheduled_before

    slack.slash_command("U_ALICE", incident.channel_id, "severity sev2")
    wait_until(lambda: services.store.get(incident.id).severity == "sev2")
    slack.post_message_as_user("U_CAROL", incident.channel_id, "after the restart")
    wait_until(lambda: len(timeline.entries({"message"})) == 6)
    texts = [e.data["text"] for e in timeline.entries({"message"})]
    assert len(texts) == len(set(texts))
