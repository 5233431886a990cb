"""Guided recovery through the Slack emulator and the production bot, with a real Redis: the plan's buttons under a
verdict, a click that becomes a normal action request, stale and forged clicks, the delta after a step, Undo.

The verdicts are published by the same code the assessment worker runs (``service.assessment.publish``) from
hand-made check results, so these tests need no cluster; tests/workers/test_recovery_cluster.py clicks
through the plans of the test bed's scenarios.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from chat.recovery_blocks import ACTION_UNDO, StepButton, step_action_id
from incident.actions import ActionStatus
from incident.assessment import Assessment
from incident.model import Incident
from persistence.action_store import ActionStore
from sandbox.slack import SlackEmulator
from service import recovery_record
from service.assessment import SlackTarget, publish
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.fixtures.slack import RunningBot
from tests.incident.test_recovery import dns_cascade, node_failure
from tests.incident.test_verdict import healthy, result, with_
from tests.incident.test_recovery import assessment as make_assessment


@pytest.fixture()
def incident(slack: SlackEmulator, bot_server: RunningBot) -> Incident:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 nodes down")
    opened = open_incident(slack, bot_server)
    wait_until(lambda: any(f"Opened incident `{opened.id}`" in t for t in ephemeral_texts(slack)))
    return opened


def post_verdict(bot: RunningBot, incident: Incident, assessment: Assessment, after_action: str | None = None) -> dict[str, Any]:
    """Publish a verdict as the assessment worker does; returns the verdict message."""
    target = SlackTarget(bot.services.slack, incident.channel_id)
    publish(bot.settings, target, assessment, bot.services.redis, incident.id, after_action=after_action)
    assert target.progress_ts
    return bot.services.slack.call("conversations.history", channel=incident.channel_id, latest=target.progress_ts,
                                   inclusive=True, limit=1)["messages"][0]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]


def reply_after(slack: SlackEmulator, seen: int, timeout: float = 10) -> str:
    wait_until(lambda: len(ephemeral_texts(slack)) > seen, timeout)
    return ephemeral_texts(slack)[-1]


def test_the_verdict_shows_the_plan_with_the_primary_step_first(slack: SlackEmulator, bot_server: RunningBot,
                                                               incident: Incident) -> None:
    both = make_assessment(with_(
        healthy(), result("nodes", "fail", total=3, unknown=1, unknown_names=["kwok-node-2"], cordoned_names=[]),
        result("dns", "fail", ready_endpoints_zero=True, ready_replicas_zero=True,
               deployments=[{"name": "coredns", "desired": 2, "ready": 0}])))
    message = post_verdict(bot_server, incident, both)
    shown = buttons(message)
    assert [b["action_id"] for b in shown] == [step_action_id(n) for n in (1, 2, 3)]
    assert shown[0]["style"] == "primary" and all("style" not in b for b in shown[1:])
    assert shown[0]["text"]["text"] == "1. cordon node kwok-node-2"
    text = str(message["blocks"])
    assert "Recovery plan" in text and "`restart deployment kube-system/coredns` — waits for *Infrastructure" in text
    entry = bot_server.services.store.timeline(incident.id).latest("assessment")
    assert entry is not None and StepButton.parse(shown[0]["value"]).ref == entry.data["ref"]


def test_a_click_is_a_normal_action_request_linked_to_its_step(slack: SlackEmulator, bot_server: RunningBot,
                                                               incident: Incident, redis_client: redis.Redis) -> None:
    message = post_verdict(bot_server, incident, node_failure())
    first = buttons(message)[0]
    seen = len(ephemeral_texts(slack))
    slack.click_button("U_CAROL", incident.channel_id, message["ts"], first["action_id"], first["value"])
    assert "may not request risky actions" in reply_after(slack, seen)
    assert not redis_client.keys("k8sbot:action:*")

    seen = len(ephemeral_texts(slack))
    slack.click_button("U_ALICE", incident.channel_id, message["ts"], first["action_id"], first["value"])
    assert "Checking `cordon node kwok-node-2`" in reply_after(slack, seen)
    request = ActionStore(bot_server.services.redis, bot_server.services.keys).get("A1")
    assert (request.kind, request.target, request.requested_by, request.status) == (
        "cordon", "kwok-node-2", "U_ALICE", ActionStatus.PREPARING)
    link = redis_client.hgetall("k8sbot:recovery-step:A1")
    assert link[b"number"] == b"1" and link[b"ref"].decode() == StepButton.parse(first["value"]).ref
    requested = bot_server.services.store.timeline(incident.id).latest("action_requested")
    assert requested is not None and requested.data["plan_step"] == 1


def test_a_forged_button_targeting_another_object_is_refused(slack: SlackEmulator, bot_server: RunningBot,
                                                             incident: Incident, redis_client: redis.Redis) -> None:
    message = post_verdict(bot_server, incident, node_failure())
    first = buttons(message)[0]
    real = StepButton.parse(first["value"])
    assert real is not None
    for forged in (StepButton(real.ref, 1, "cordon", "kwok-node-0"), StepButton(real.ref, 3, "delete-node", "kwok-node-0"),
                   StepButton(real.ref, 1, "delete-node", "kwok-node-2")):
        seen = len(ephemeral_texts(slack))
        payload = dict(slack_payload(slack, message, first, forged.value()))
        slack.transport.interaction("block_actions", payload)
        assert "does not match the recovery plan" in reply_after(slack, seen)
    seen = len(ephemeral_texts(slack))
    slack.transport.interaction("block_actions", slack_payload(slack, message, first, "garbage"))
    assert "carries no recovery step" in reply_after(slack, seen)
    assert not redis_client.keys("k8sbot:action:*")


def slack_payload(slack: SlackEmulator, message: dict[str, Any], element: dict[str, Any], value: str) -> dict[str, Any]:
    """A ``block_actions`` payload for ``element`` with another value: what a forged request would send."""
    from sandbox.slack import payloads

    ws = slack.workspace
    channel = ws.require_channel(next(c for c in slack.channels if ws.message(c, message["ts"]) is not None))
    action = {"action_id": element["action_id"], "block_id": "x", "type": "button", "value": value,
              "action_ts": "1.0"}
    url = ws.issue_response_url("actions", channel=channel.id, user="U_ALICE", message_ts=message["ts"],
                                original_is_ephemeral=False)
    return payloads.block_actions(ws, slack.verification_token, ws.require_user("U_ALICE"), channel, message,
                                  is_ephemeral=False, action=action, response_url=url, trigger_id=ws.issue_trigger("U_ALICE"))


def test_a_stale_plan_says_so_and_offers_the_fresh_plan(slack: SlackEmulator, bot_server: RunningBot,
                                                        incident: Incident, redis_client: redis.Redis) -> None:
    old = post_verdict(bot_server, incident, node_failure())
    post_verdict(bot_server, incident, dns_cascade())
    first = buttons(old)[0]
    seen = len(slack.ephemeral)
    slack.click_button("U_ALICE", incident.channel_id, old["ts"], first["action_id"], first["value"])
    wait_until(lambda: any("stale" in str(e.get("text")) for e in slack.ephemeral[seen:]))
    fresh = next(e for e in slack.ephemeral[seen:] if "stale" in str(e.get("text")))
    assert "a newer assessment exists" in fresh["text"]
    offered = buttons(fresh)
    assert offered and offered[0]["text"]["text"] == "1. restart deployment kube-system/coredns"
    assert not redis_client.keys("k8sbot:action:*")
    # the fresh plan's button, clicked on the ephemeral message, is a normal request
    seen = len(ephemeral_texts(slack))
    slack.click_button("U_ALICE", incident.channel_id, fresh["ts"], offered[0]["action_id"], offered[0]["value"])
    assert "Checking `restart deployment kube-system/coredns`" in reply_after(slack, seen)


def test_a_plan_drawn_before_the_last_action_finished_is_stale(slack: SlackEmulator, bot_server: RunningBot,
                                                               incident: Incident, redis_client: redis.Redis) -> None:
    message = post_verdict(bot_server, incident, node_failure())
    bot_server.services.store.timeline(incident.id).append("action", "U_BOB", {
        "action_id": "A9", "description": "cordon node kwok-node-1", "status": "succeeded"})
    first = buttons(message)[0]
    seen = len(ephemeral_texts(slack))
    slack.click_button("U_ALICE", incident.channel_id, message["ts"], first["action_id"], first["value"])
    reply = reply_after(slack, seen)
    assert "the cluster changed since it was drawn" in reply and "cordon node kwok-node-1" in reply
    assert not redis_client.keys("k8sbot:action:A*")
    assert bot_server.services.store.timeline(incident.id).latest("assessment_requested") is not None


def test_the_verdict_after_a_step_opens_with_the_delta_and_offers_undo_when_worse(
        slack: SlackEmulator, bot_server: RunningBot, incident: Incident) -> None:
    message = post_verdict(bot_server, incident, dns_cascade())
    first = buttons(message)[0]
    seen = len(ephemeral_texts(slack))
    slack.click_button("U_ALICE", incident.channel_id, message["ts"], first["action_id"], first["value"])
    assert "Checking" in reply_after(slack, seen)
    services = bot_server.services
    request = ActionStore(services.redis, services.keys).get("A1")
    recovery_record.record_undo(services.redis, services.keys, request, None, "a restart replaces pods; nothing to put back")
    worse = make_assessment(with_(healthy(),
                                  result("dns", "fail", ready_endpoints_zero=True, ready_replicas_zero=True,
                                         deployments=[{"name": "coredns", "desired": 2, "ready": 0}]),
                                  result("nodes", "fail", total=3, unknown=1, unknown_names=["kwok-node-1"])))
    after = post_verdict(bot_server, incident, worse, after_action="A1")
    text = str(after["blocks"])
    assert "Step 1 made things worse" in text and "new: Node failure" in text
    assert "still failing: DNS cascade" in text and "a restart replaces pods" in text
    assert ACTION_UNDO not in [b["action_id"] for b in buttons(after)]

    healed = post_verdict(bot_server, incident, make_assessment(list(healthy().values())), after_action="A1")
    assert "the cluster looks healthy" in str(healed["blocks"])


def test_naming_a_replacement_for_a_node_the_bot_did_not_delete_changes_nothing(
        slack: SlackEmulator, bot_server: RunningBot, incident: Incident, redis_client: redis.Redis) -> None:
    for text, expected in (("replaced node kwok-node-1 kwok-node-9", "Give the deleted node, `by`"),
                           ("replaced node Bad_Node by kwok-node-9", "not a valid node name")):
        response = slack.slash_command("U_ALICE", incident.channel_id, text)
        assert expected in response.body, response.body
    seen = len(ephemeral_texts(slack))
    slack.slash_command("U_ALICE", incident.channel_id, "replaced node kwok-node-1 by kwok-node-9")
    assert "The bot deleted no node `kwok-node-1` in this incident" in reply_after(slack, seen)
    assert not redis_client.keys("k8sbot:node-restore:*")


def test_a_replayed_plan_click_requests_its_action_once(slack: SlackEmulator, bot_server: RunningBot,
                                                        incident: Incident, redis_client: redis.Redis) -> None:
    """The bot died after the click's work requested the step; the inbox replays the click: no second request."""
    from service import inbox
    from service.inbox import Inbox
    from service.recovery import click_step

    message = post_verdict(bot_server, incident, node_failure())
    first = buttons(message)[0]
    body = slack_payload(slack, message, first, first["value"])
    services = bot_server.services
    entry = Inbox(services.redis, services.keys).record({"kind": "button", "body": body})
    replies = []
    for _ in range(2):  # the first run, then its replay
        with inbox.scope(entry):
            replies.append(click_step(services, body, "U_ALICE").text)
    assert "Checking `cordon node kwok-node-2`" in replies[0]
    assert "was already requested by this click" in replies[1]
    assert [k for k in redis_client.keys("k8sbot:action:A*")] == [b"k8sbot:action:A1"]
