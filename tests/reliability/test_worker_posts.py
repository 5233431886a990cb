"""Workers post through the outbox too, and the bot's drainers send what they queued.

A real RQ worker (a forked work horse, as in production) runs the PagerDuty page job: it triggers the
page and *queues* its note for the incident channel. Workers run no drainer — forking a process whose
threads may hold a lock (a Redis pool's, logging's) is how forked children deadlock — so the note waits
in Redis, survives the worker's exit, and is sent once when a bot process's drainer runs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from incident.model import Incident
from incident.settings import Settings
from persistence.outbox import OutboxStore
from sandbox.slack import SlackEmulator
from service import paging
from service.context import Context
from service.outbox import Drainer
from tests.bot.helpers import wait_until
from tests.fixtures.workers import WorkerProcesses, settings_environment
from tests.workers.test_schedule_e2e import PagerDutyStub


def test_a_workers_post_waits_in_the_outbox_for_a_bot_to_send_it(slack: SlackEmulator, bot_settings: Settings,
                                                                  tmp_path: Path) -> None:
    with PagerDutyStub() as stub:
        settings = bot_settings.model_copy(update={"pagerduty_routing_key": SecretStr("KEY"),
                                                   "pagerduty_events_url": stub.url})
        services = Context.from_settings(settings)
        slack.add_channel("C_INC1", name="inc-1", members=[slack.bot_user_id, "U_ALICE"])
        incident = Incident(id="20261202-001", title="API down", severity="sev1", channel_id="C_INC1",
                            channel_name="inc-1", opened_by="U_ALICE", opened_at=services.clock.now(),
                            commander="U_ALICE")
        services.store.create(incident)
        paging.request_page(settings, services.redis, incident.id, "control_plane", "U_ALICE")
        with WorkerProcesses(settings_environment(settings), tmp_path) as workers:
            workers.burst()  # the worker (and its forked horse) has exited
        assert len(stub.events) == 1

    outbox = OutboxStore(services.redis, services.keys)
    assert outbox.backlog("C_INC1") == 1, "the worker's note was not queued in the outbox"
    assert not [m for m in slack.messages("C_INC1") if m.get("bot_id")], "the worker posted by itself"
    drainer = Drainer.start_for(settings, threads=2)  # what every bot process runs
    try:
        wait_until(lambda: outbox.pending() == 0, 20)
    finally:
        drainer.stop()
    [note] = [str(m.get("text", "")) for m in slack.messages("C_INC1") if m.get("bot_id")]
    assert note.startswith(":pager: PagerDuty triggered for Control plane still failing")
