"""The durable Slack outbox against the emulator's per-channel ``chat.postMessage`` limit and a real Redis.

- The stakeholder channel, which every incident's updates reach, is held to Slack's per-channel
  allowance; the incident channels' posts must not wait behind it (head-of-line blocking), every
  stakeholder post still lands once, in order, and the commander is told stakeholders are late.
- A drainer that dies after Slack took a post but before the pop: the next drainer finds the post by
  its id and does not post it again.
- Redis away mid-delivery (before or after the send): the channel is not left leased to nobody for a lease.
- A write Slack refuses for good is given up on visibly (log and timeline), and the channel moves on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from incident.model import Incident
from incident.settings import Settings
from persistence.outbox import OutboxStore
from sandbox.slack import SlackEmulator
from service.context import Context
from service.outbox import Drainer, Outbox
from tests.bot.helpers import open_incident, wait_until
from tests.fixtures.slack import STAKEHOLDER_CHANNEL, RunningBot


def _bot_texts(slack: SlackEmulator, channel: str) -> list[str]:
    return [str(m.get("text", "")) for m in slack.messages(channel) if m.get("bot_id")]


def _stakeholder_replies(slack: SlackEmulator, incident: Incident) -> list[str]:
    assert incident.stakeholder_ts
    return [str(m.get("text", "")) for m in slack.replies(STAKEHOLDER_CHANNEL, incident.stakeholder_ts)
            if m.get("bot_id") and m.get("ts") != incident.stakeholder_ts]


def _rounds(slack: SlackEmulator, incident: Incident) -> list[int]:
    """The rounds of ``incident``'s updates in its stakeholder thread, in the order they appear."""
    return [int(n) for t in _stakeholder_replies(slack, incident)
            for n in re.findall(rf"round (\d+) for {re.escape(incident.title)}", t)]


def _digests(slack: SlackEmulator) -> list[str]:
    return [str(m.get("text", "")) for m in slack.messages(STAKEHOLDER_CHANNEL, include_replies=False)
            if m.get("bot_id") and "Stakeholder digest" in str(m.get("text", ""))]


def _failing_first(real: Callable[..., Any], times: int, failures: list[str], label: str) -> Callable[..., Any]:
    """``real``, raising a lost Redis connection on its first ``times`` calls (noted in ``failures``); a label
    ending in ``-lost`` runs ``real`` first (Redis did it, its answer was lost)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    calls = [0]

    def call(*args: object, **kwargs: object) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            failures.append(label)
            if label.endswith("-lost"):
                real(*args, **kwargs)
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1. Connection refused.")
        return real(*args, **kwargs)

    return call


def test_a_saturated_stakeholder_channel_holds_up_no_incident_channel(slack: SlackEmulator,
                                                                       bot_server: RunningBot) -> None:
    incidents = []
    for title in ("API down", "DNS flapping", "Nodes lost", "Payments slow"):
        slack.slash_command("U_ALICE", "C_GENERAL", f"incident open sev1 {title}")
        wait_until(lambda: len(list(bot_server.services.store.iter_all())) == len(incidents) + 1, 20)
        incidents.append(open_incident(slack, bot_server, timeout=20))
    # Slack's per-channel allowance, scaled down: 3 posts per 4 s in each channel.
    slack.rate_limiter.window_seconds = 4.0
    slack.rate_limiter.reset()
    slack.set_rate_limit("chat.postMessage", 3)

    for round_ in range(3):
        for incident in incidents:
            slack.slash_command("U_BOB", incident.channel_id, f"update round {round_} for {incident.title}")

    def incident_posts_landed() -> bool:
        return all(sum("round" in t for t in _bot_texts(slack, i.channel_id)) == 3 for i in incidents)

    wait_until(incident_posts_landed, 30)
    behind = sum(sum("round" in t for t in _stakeholder_replies(slack, i)) for i in incidents)
    assert behind < 12, "the stakeholder channel kept up; the test did not saturate it"
    # … and every stakeholder update lands, once, in order, in its incident's thread (several in one reply
    # when the channel was behind and its queue was coalesced).
    wait_until(lambda: all(_rounds(slack, i) == [0, 1, 2] for i in incidents), 90)
    for incident in incidents:
        assert sum("round" in t for t in _bot_texts(slack, incident.channel_id)) == 3
    assert len(_digests(slack)) <= 1
    late = [t for i in incidents for t in _bot_texts(slack, i.channel_id) if "being updated late" in t]
    assert late, "no commander was told the stakeholders are updated late"
    assert OutboxStore(bot_server.services.redis, bot_server.services.keys).pending() == 0


def test_a_redelivery_after_a_dead_drainer_does_not_post_twice(slack: SlackEmulator, bot_settings: Settings) -> None:
    services = Context.from_settings(bot_settings)
    slack.add_channel("C_OUT", name="out", members=[slack.bot_user_id])
    post_id = Outbox(services).post("C_OUT", "exactly once, please")
    store = OutboxStore(services.redis, services.keys, lease_ms=300)
    claimed = store.claim("C_OUT", "dead-drainer")
    assert claimed is not None and claimed.attempt == 1
    # The dead drainer's send reached Slack; it died before popping the head.
    services.slack.post_message("C_OUT", "exactly once, please", post_id=post_id)
    time.sleep(0.4)  # its lease runs out (300 ms here, 60 s in production)
    drainer = Drainer.start_for(bot_settings, threads=1)
    try:
        wait_until(lambda: store.backlog("C_OUT") == 0, 10)
    finally:
        drainer.stop()
    assert _bot_texts(slack, "C_OUT") == ["exactly once, please"]


@pytest.mark.parametrize("failing", [
    # A Sentinel failover between Slack taking a post and the pop: the sender waits Redis out and pops it itself.
    {"done": 3},
    # A failover after the lease was taken but before the send (a fresh-clone run lost Redis reading the
    # channel's backlog): the channel is handed back as soon as Redis answers again.
    {"coalesce": 1, "release": 2},
    # The lease was taken, but its answer was lost with the connection.
    {"claim-lost": 1, "release": 1},
], ids=["after-the-send", "before-the-send", "claim-answer-lost"])
def test_redis_away_mid_delivery_does_not_hold_the_channel_for_a_lease(slack: SlackEmulator, bot_settings: Settings,
                                                                        failing: dict[str, int]) -> None:
    """Either way the channel is never left leased to nobody (60 s) with its next posts (an incident's status
    update) behind it."""
    services = Context.from_settings(bot_settings)
    slack.add_channel("C_OUT", name="out", members=[slack.bot_user_id])
    outbox = Outbox(services)
    outbox.post("C_OUT", "sent as Redis fails over")
    outbox.post("C_OUT", "the next one, right behind it")
    drainer = Drainer(bot_settings, threads=1)
    failures: list[str] = []
    for label, times in failing.items():
        name = label.removesuffix("-lost")
        owner = drainer.fan_in if name == "coalesce" else drainer.store
        setattr(owner, name, _failing_first(getattr(owner, name), times, failures, label))
    for thread in drainer._threads:
        thread.start()
    try:
        # Well inside the 60 s lease: the channel was never left to a lapsed lease.
        wait_until(lambda: _bot_texts(slack, "C_OUT") == ["sent as Redis fails over", "the next one, right behind it"],
                   10)
    finally:
        drainer.stop()
    assert failures == [name for name, times in failing.items() for _ in range(times)]
    assert OutboxStore(services.redis, services.keys).backlog("C_OUT") == 0


def test_a_post_slack_refuses_for_good_is_recorded_and_the_channel_moves_on(slack: SlackEmulator,
                                                                           bot_settings: Settings) -> None:
    services = Context.from_settings(bot_settings)
    slack.add_channel("C_OUT", name="out", members=[slack.bot_user_id])
    incident = Incident(id="20261201-001", title="t", severity="sev2", channel_id="C_OUT", channel_name="out",
                        opened_by="U_ALICE", opened_at=services.clock.now(), commander="U_ALICE")
    services.store.create(incident)
    outbox = Outbox(services)
    outbox.post("C_GONE", "to an archived channel", incident_id=incident.id)
    outbox.post("C_OUT", "still delivered", incident_id=incident.id)
    drainer = Drainer.start_for(bot_settings, threads=2)
    try:
        wait_until(lambda: _bot_texts(slack, "C_OUT") == ["still delivered"], 10)
        wait_until(lambda: services.store.timeline(incident.id).entries({"bot_error"}), 10)
    finally:
        drainer.stop()
    [error] = services.store.timeline(incident.id).entries({"bot_error"})
    assert error.data == {"step": "outbox post", "channel": "C_GONE", "error": "channel_not_found"}


def test_a_channel_that_is_behind_gets_one_digest_and_one_reply_per_incident(slack: SlackEmulator,
                                                                              bot_settings: Settings) -> None:
    services = Context.from_settings(bot_settings)
    outbox = Outbox(services)
    incidents = []
    for n, title in enumerate(("API down", "DNS flapping", "Payments slow"), start=1):
        channel = f"C_INC{n}"
        slack.add_channel(channel, name=channel.lower(), members=[slack.bot_user_id])
        incident = Incident(id=f"20261202-00{n}", title=title, severity="sev1", channel_id=channel,
                            channel_name=channel.lower(), opened_by="U_ALICE", opened_at=services.clock.now(),
                            commander="U_ALICE", stakeholder_ts=services.slack.post_message(STAKEHOLDER_CHANNEL, title))
        services.store.create(incident)
        incidents.append(incident)
    for round_ in range(4):  # 12 thread replies wait for the stakeholder channel: it is behind
        for incident in incidents:
            if round_ == 3 and incident is incidents[0]:
                for extra in range(8):  # 12 for the first incident: two replies (10 updates at most in one)
                    outbox.post(STAKEHOLDER_CHANNEL, f"extra {extra} for {incident.title}", incident_id=incident.id,
                                in_stakeholder_thread=True)
            services.store.timeline(incident.id).append("status_update", "U_BOB", {"text": f"round {round_}"})
            outbox.post(STAKEHOLDER_CHANNEL, f"round {round_} for {incident.title}", incident_id=incident.id,
                        in_stakeholder_thread=True)
    def stakeholder_posts() -> int:
        return sum(c.params.get("channel") == STAKEHOLDER_CHANNEL for c in slack.calls_to("chat.postMessage"))

    posts_before = stakeholder_posts()
    Drainer(bot_settings, threads=0).flush()

    [digest] = _digests(slack)
    first = incidents[0]
    assert f"SEV1 {first.title}* (open, <#{first.channel_id}>): 12 update(s) on the way; latest: round 3" in digest
    replies = _stakeholder_replies(slack, first)
    assert len(replies) == 2 and re.findall(r"(round \d|extra \d)", "".join(replies)) == [
        "round 0", "round 1", "round 2", *(f"extra {n}" for n in range(8)), "round 3"]
    for incident in incidents[1:]:
        assert f"SEV1 {incident.title}" in digest and "4 update(s) on the way; latest: round 3" in digest
        assert _rounds(slack, incident) == [0, 1, 2, 3]
        [_] = _stakeholder_replies(slack, incident)  # all four in one reply, in its own thread
    for incident in incidents:
        assert sum("being updated late" in t for t in _bot_texts(slack, incident.channel_id)) == 1  # the commander
    assert stakeholder_posts() - posts_before == 1 + len(incidents) + 1  # instead of 20
    assert OutboxStore(services.redis, services.keys).pending() == 0
