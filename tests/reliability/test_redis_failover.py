"""Redis Sentinel failover in the middle of an incident: a real master, replica and three sentinels
(Debian's redis-server and redis-sentinel on loopback), the bot and a worker pointed at the sentinels.

The master is SIGKILLed while the incident is open and a status update is on its way; the sentinels
promote the replica. The update's ack waits up to two seconds for Redis to take its record; if the
failover takes longer, the ack says the store is unavailable (never a false "done") and the user repeats it. Nothing acknowledged is lost (the test waits for the replica to have every write
before the kill: what asynchronous replication can lose is bounded, not zero — see docs/reliability.md),
the update lands exactly once, the bot carries on without a restart, and the worker — whose connection
died under its blocking dequeue — runs the schedule's next tick on the new master.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from rq.job import Job

from incident.settings import Settings
from sandbox.redis_sentinel import SentinelGroup
from sandbox.slack import SlackEmulator
from service import reminders
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.fixtures.slack import RunningBot
from tests.fixtures.workers import WorkerProcesses


@pytest.fixture()
def sentinels() -> Iterator[SentinelGroup]:
    with SentinelGroup() as group:
        yield group


@pytest.fixture()
def bot_settings(bot_settings: Settings, sentinels: SentinelGroup) -> Settings:
    """The usual test settings, with Redis reached through the sentinels instead of REDIS_URL."""
    return bot_settings.model_copy(update={"redis_sentinels": sentinels.addresses})


def _channel_texts(slack: SlackEmulator, channel: str) -> list[str]:
    return [str(m.get("text", "")) for m in slack.messages(channel) if m.get("bot_id")]


def test_the_bot_rides_out_a_sentinel_failover_mid_incident(slack: SlackEmulator, bot_server: RunningBot,
                                                            workers: WorkerProcesses, sentinels: SentinelGroup) -> None:
    services = bot_server.services
    workers.start()
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 Checkout down")
    incident = open_incident(slack, bot_server, timeout=20)
    slack.slash_command("U_ALICE", incident.channel_id, "update before the failover")
    timeline = services.store.timeline(incident.id)
    wait_until(lambda: timeline.entries({"status_update"}), 20)
    wait_until(lambda: reminders.schedule_info(services.settings, services.redis, incident.id).generation == 2, 20)

    old_master = sentinels.master_port()
    assert old_master == sentinels.master.port
    # Every write acknowledged so far is on the replica (what WAIT guarantees; async replication otherwise).
    assert redis.Redis(port=old_master).execute_command("WAIT", 1, 5000) >= 1
    before = [(e.kind, e.actor, e.data.get("text")) for e in timeline.entries()]

    killed = sentinels.kill_master()
    slack.slash_command("U_BOB", incident.channel_id, "update during the failover")
    started = time.monotonic()
    new_master = sentinels.wait_for_failover(killed)
    failover_s = time.monotonic() - started
    assert new_master == sentinels.replica.port

    if any("is unavailable right now" in text for text in ephemeral_texts(slack)):
        # The failover outlasted the ack's patience (RECORD_PATIENCE_SECONDS, under a loaded machine): the ack
        # said so and nothing was recorded, so nothing may have happened; the user repeats it, as told.
        assert len(timeline.entries({"status_update"})) == 1
        slack.slash_command("U_BOB", incident.channel_id, "update during the failover")
    wait_until(lambda: len(timeline.entries({"status_update"})) == 2, 30)
    after = [(e.kind, e.actor, e.data.get("text")) for e in timeline.entries()]
    assert after[:len(before)] == before, "an acknowledged entry was lost in the failover"
    wait_until(lambda: [t for t in _channel_texts(slack, incident.channel_id) if "during the failover" in t], 20)
    updates = [text for text in _channel_texts(slack, incident.channel_id) if "during the failover" in text]
    assert len(updates) == 1, updates
    assert not any("went wrong" in text or "Traceback" in text for text in ephemeral_texts(slack)), \
        ephemeral_texts(slack)
    assert services.store.get(incident.id).title == "Checkout down"

    # The worker lost its connection under its blocking dequeue; it must run the next tick on the new master.
    # The second update's reschedule (generation 3) comes after its channel post: a tick queued before it is stale.
    wait_until(lambda: reminders.schedule_info(services.settings, services.redis, incident.id).generation == 3, 20)
    due = incident.opened_at.timestamp() + 16 * 60  # past the SEV1 15-minute cadence: a status prompt is due
    job = reminders.tick_now(services.settings, services.redis, incident.id, at_epoch=due)
    wait_until(lambda: Job.fetch(job.id, connection=services.redis).get_status() == "finished", 60)
    sent = Job.fetch(job.id, connection=services.redis).return_value()["sent"]
    assert any(":status_prompt:" in token for token in sent), sent
    wait_until(lambda: any("a stakeholder update for" in text for text in _channel_texts(slack, incident.channel_id)), 20)
    print(f"failover took {failover_s:.1f} s (sentinels' down-after 1 s); the update landed once, the tick ran")
