"""The durable command inbox against a real Redis and the Slack emulator.

- An entry is leased to the process that recorded it; a renewed lease is never taken over, an expired
  one is (the process died), and only the current owner can finish it (fenced).
- A replay finds what its first run already did: the same entry queues each post once and records
  each timeline entry and state change once, whether the first run died before, in the middle of, or
  after its effects.
- A replay does not queue again the job its first run queued (a stable RQ job id).
- A replayed risky-action command stores one request and queues one dry-run; a replayed Confirm click
  whose first run confirmed finishes that confirmation (one entry, one place in the queue).
- End to end in one process: an entry of a dead process is replayed by the bot's keeper, its work runs,
  the answer goes to the request's response_url, and the entry is gone.
"""

from __future__ import annotations

import time

import pytest
import redis

from incident.errors import ConfirmationError
from incident.model import Incident
from incident.settings import Settings
from persistence.inbox import InboxEntry, InboxStore
from persistence.keys import Keys
from persistence.outbox import OutboxStore
from sandbox.slack import SlackEmulator
from service import inbox, jobs, lifecycle
from service.context import Context
from service.inbox import Inbox
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.fixtures.slack import STAKEHOLDER_CHANNEL, RunningBot


def test_a_lease_is_kept_while_renewed_taken_over_when_not_and_fenced(redis_client: redis.Redis) -> None:
    store = InboxStore(redis_client, Keys(), lease_ms=300)
    entry = store.record({"kind": "command", "body": {"text": "incident status"}}, "replica-a")
    assert store.pending() == 1 and entry.attempt == 1
    for _ in range(4):  # renewed for longer than one lease: never someone else's
        time.sleep(0.15)
        assert store.renew([entry.id], "replica-a") == 1
        assert store.claim_expired("replica-b") == []
    time.sleep(0.4)  # replica-a stopped renewing (it died)
    [taken] = store.claim_expired("replica-b")
    assert (taken.id, taken.body, taken.attempt) == (entry.id, entry.body, 2)
    assert store.renew([entry.id], "replica-a") == 0
    assert not store.done(entry.id, "replica-a"), "a process that lost the lease finished the entry"
    assert store.done(entry.id, "replica-b") and store.pending() == 0


def _incident(slack: SlackEmulator, bot_server: RunningBot) -> Incident:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 Checkout errors")
    return open_incident(slack, bot_server, timeout=20)


def _posted(slack: SlackEmulator, services: Context, incident_id: str, needle: str) -> tuple[int, int]:
    """How often ``needle`` was posted in the incident channel and in its stakeholder thread, once all is sent."""
    wait_until(lambda: OutboxStore(services.redis, services.keys).pending() == 0, 20)
    incident = services.store.get(incident_id)
    assert incident.stakeholder_ts
    in_channel = sum(needle in str(m.get("text", "")) for m in slack.messages(incident.channel_id) if m.get("bot_id"))
    in_thread = sum(needle in str(m.get("text", "")) for m in slack.replies(STAKEHOLDER_CHANNEL, incident.stakeholder_ts)
                    if m.get("bot_id"))
    return in_channel, in_thread


def test_a_replayed_update_queues_and_records_once(slack: SlackEmulator, bot_server: RunningBot) -> None:
    services = bot_server.services
    incident = _incident(slack, bot_server)
    entry = Inbox(services.redis, services.keys).record({"kind": "command", "body": {}})
    for _ in range(3):  # the first run, then two replays of the same entry
        with inbox.scope(entry):
            lifecycle.post_status_update(services, services.store.get(incident.id), "rolled back the deploy",
                                         "U_BOB")
    updates = services.store.timeline(incident.id).entries({"status_update"})
    assert [e.data["text"] for e in updates] == ["rolled back the deploy"]
    assert _posted(slack, services, incident.id, "rolled back the deploy") == (1, 1)
    # Outside any entry (a worker, a script), two calls are two updates.
    lifecycle.post_status_update(services, services.store.get(incident.id), "second", "U_BOB")
    lifecycle.post_status_update(services, services.store.get(incident.id), "second", "U_BOB")
    assert len(services.store.timeline(incident.id).entries({"status_update"})) == 3


def test_a_replayed_severity_change_is_made_and_announced_once(slack: SlackEmulator,
                                                               bot_server: RunningBot) -> None:
    services = bot_server.services
    incident = _incident(slack, bot_server)
    entry = Inbox(services.redis, services.keys).record({"kind": "command", "body": {}})
    with inbox.scope(entry):
        services.store.set_severity(incident.id, "sev1", "U_BOB", dedupe=inbox.effect_id("change"))
    # The first run died right after the change, before announcing it; the replay announces it.
    replay = InboxEntry(entry.id, entry.raw, 2)
    for _ in range(2):
        with inbox.scope(replay):
            lifecycle.change_severity(services, services.store.get(incident.id), "sev1", "U_BOB")
    changes = services.store.timeline(incident.id).entries({"severity_changed"})
    assert [(c.data["from"], c.data["to"]) for c in changes] == [("sev2", "sev1")]
    assert _posted(slack, services, incident.id, "changed from SEV2 to") == (1, 1)
    assert services.store.get(incident.id).severity == "sev1"


def test_the_keeper_replays_the_entry_of_a_dead_process(slack: SlackEmulator, bot_server: RunningBot) -> None:
    services = bot_server.services
    incident = _incident(slack, bot_server)
    url = slack.workspace.issue_response_url("commands", channel=incident.channel_id, user="U_BOB")
    dead = InboxStore(services.redis, services.keys, lease_ms=1)
    dead.record({"kind": "command", "body": {"text": "update replayed after a crash", "user_id": "U_BOB",
                                             "channel_id": incident.channel_id, "response_url": url}}, "dead-pid")
    before = len(ephemeral_texts(slack))
    wait_until(lambda: dead.pending() == 0, 20)  # the serving bot's keeper took it over and finished it
    assert [e.data["text"] for e in services.store.timeline(incident.id).entries({"status_update"})] == [
        "replayed after a crash"]
    wait_until(lambda: sum("replayed after a crash" in str(m.get("text", ""))
                           for m in slack.messages(incident.channel_id) if m.get("bot_id")) == 1, 20)
    wait_until(lambda: len(ephemeral_texts(slack)) > before, 10)
    assert "Status update posted" in ephemeral_texts(slack)[-1]


def test_a_replay_does_not_queue_its_first_runs_job_again(bot_settings: Settings) -> None:
    services = Context.from_settings(bot_settings)
    incident = Incident(id="20261202-001", title="t", severity="sev2", channel_id="C_X", channel_name="x",
                        opened_by="U_ALICE", opened_at=services.clock.now(), commander="U_ALICE")
    entry = Inbox(services.redis, services.keys).record({"kind": "command", "body": {}})
    with inbox.scope(entry):
        lifecycle.request_postmortem(services, incident, "U_ALICE")  # the first run queued it, then died
    with inbox.scope(InboxEntry(entry.id, entry.raw, 2)):
        lifecycle.request_postmortem(services, incident, "U_ALICE")  # its replay
    queue = jobs.get_queue(bot_settings, jobs.POSTMORTEM.queue, services.redis)
    assert queue.count == 1
    lifecycle.request_postmortem(services, incident, "U_ALICE")  # outside an entry: a request of its own
    assert queue.count == 2


def test_a_replayed_action_request_and_confirm_click_act_once(bot_settings: Settings) -> None:
    """A typed risky command and its Confirm click, each replayed after its first run died: one request,
    one dry-run job, one ``action_requested`` and one ``action_confirmed`` entry, one place in the queue."""
    from incident.actions import ActionStatus
    from persistence.action_queue import ActionQueue
    from service import action_requests
    from service.actions import action_store

    services = Context.from_settings(bot_settings)
    incident = Incident(id="20261202-002", title="t", severity="sev2", channel_id="C_X", channel_name="x",
                        opened_by="U_ALICE", opened_at=services.clock.now(), commander="U_ALICE")
    command = Inbox(services.redis, services.keys).record({"kind": "command", "body": {}})
    answers = []
    for attempt in (1, 2, 3):  # the first run, then two replays
        with inbox.scope(InboxEntry(command.id, command.raw, attempt)):
            answers.append(action_requests.request_action(services, "U_ALICE", "C_X", incident, "cordon",
                                                          "kwok-node-0", {}).text)
    store = action_store(services)
    assert [k for k in services.redis.keys("k8sbot:action:A*")] == [b"k8sbot:action:A1"]
    assert "A1" in answers[0] and all("already requested by this click or command" in a for a in answers[1:])
    prepare = jobs.get_queue(bot_settings, jobs.ACTION_PREPARE.queue, services.redis, cluster=store.get("A1").cluster)
    assert prepare.count == 1
    timeline = services.store.timeline(incident.id)
    assert [e.data["action_id"] for e in timeline.entries({"action_requested"})] == ["A1"]

    store.prepared("A1", dry_run="would cordon kwok-node-0", guard="", ttl_seconds=300)
    click = Inbox(services.redis, services.keys).record({"kind": "button", "body": {}})
    for attempt in (1, 2):  # the click confirmed, then the bot died before answering; the keeper replays it
        with inbox.scope(InboxEntry(click.id, click.raw, attempt)):
            action_requests.confirm_action(services, "A1", "U_ALICE")
    assert store.get("A1").status == ActionStatus.QUEUED
    assert ActionQueue(services.redis, store.get("A1").cluster, services.keys, services.clock).ids() == ["A1"]
    assert len(timeline.entries({"action_confirmed"})) == 1
    # Outside a replay, a second click of the same person is refused as before.
    with pytest.raises(ConfirmationError, match="already confirmed and queued"):
        action_requests.confirm_action(services, "A1", "U_ALICE")
