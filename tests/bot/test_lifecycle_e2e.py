"""End to end over real HTTP and over Socket Mode: the emulator plays Slack, the production Bolt app answers.

open → update → severity change → mitigate (resolve needs the cluster: tests/workers/test_resolve_e2e.py), asserting the exact Slack calls and the Redis state.
"""

from __future__ import annotations

from datetime import UTC, datetime

from incident.model import Status
from sandbox.slack import SlackEmulator
from tests.fixtures.slack import STAKEHOLDER_CHANNEL, RunningBot, both_transports

from tests.bot.helpers import ephemeral_texts, method_sequence, open_incident, wait_until


@both_transports
def test_open_update_severity_mitigate(slack: SlackEmulator, bot_server: RunningBot) -> None:
    response = slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 API down")
    assert response.status == 200
    assert response.elapsed_seconds < 3

    incident = open_incident(slack, bot_server)
    today = datetime.now(UTC).strftime("%Y%m%d")
    assert incident.channel_name == f"inc-{today}-api-down"
    assert (incident.severity, incident.status, incident.commander) == ("sev1", Status.OPEN, "U_ALICE")

    channel = slack.channels[incident.channel_id]
    assert {"U_ALICE", "U_BOB", "U_CAROL"} <= set(channel.members)
    assert channel.topic.startswith("SEV1 · open · commander <@U_ALICE>")
    # Bolt's single-workspace authorization calls auth.test; the rest is the set-up in order.
    assert [m for m in method_sequence(slack) if m != "auth.test"] == [
        "conversations.create", "conversations.setTopic", "conversations.setPurpose", "usergroups.users.list",
        "conversations.invite", "chat.postMessage", "pins.add", "chat.postMessage",
    ]
    header = slack.messages(incident.channel_id)[0]
    buttons = [e["action_id"] for b in header["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["incident_assess", "incident_post_update", "incident_escalate", "incident_resolve"]
    assert [p for p in slack.pins(incident.channel_id)] and incident.header_ts == header["ts"]
    announcement = slack.messages(STAKEHOLDER_CHANNEL)[0]
    assert "API down" in announcement["text"] and f"<#{incident.channel_id}>" in announcement["text"]
    wait_until(lambda: any("Opened incident" in t for t in ephemeral_texts(slack)))

    slack.slash_command("U_ALICE", incident.channel_id, "update Failing over to the standby region")
    wait_until(lambda: len(slack.replies(STAKEHOLDER_CHANNEL, announcement["ts"])) >= 2)
    thread = slack.replies(STAKEHOLDER_CHANNEL, announcement["ts"])
    assert "Failing over to the standby region" in thread[-1]["text"]
    # Each channel drains on its own: wait for the incident channel's copy, not the stakeholders'.
    wait_until(lambda: any("Failing over" in m["text"] for m in slack.messages(incident.channel_id)))

    slack.slash_command("U_BOB", incident.channel_id, "severity sev2")
    wait_until(lambda: bot_server.services.store.get(incident.id).severity == "sev2")
    wait_until(lambda: any(c.method == "chat.update" for c in slack.calls))

    slack.slash_command("U_ALICE", incident.channel_id, "mitigate failed over")
    wait_until(lambda: bot_server.services.store.get(incident.id).status == Status.MITIGATED)
    mitigated = bot_server.services.store.get(incident.id)
    assert mitigated.mitigated_at is not None
    wait_until(lambda: any("is now *mitigated*" in m["text"] for m in slack.replies(STAKEHOLDER_CHANNEL, announcement["ts"])))

    kinds = [e.kind for e in bot_server.services.store.timeline(incident.id).entries()]
    assert kinds[0] == "opened"
    for expected in ("status_update", "severity_changed", "status_changed"):
        assert expected in kinds
    changes = bot_server.services.store.timeline(incident.id).entries({"severity_changed", "status_changed"})
    assert [(e.actor, e.data["to"]) for e in changes] == [("U_BOB", "sev2"), ("U_ALICE", "mitigated")]


@both_transports
def test_open_twice_makes_one_channel(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 Payments failing")
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 payments  FAILING")
    wait_until(lambda: len(ephemeral_texts(slack)) >= 2)
    created = [c for c in slack.calls if c.method == "conversations.create" and c.ok]
    assert len(created) == 1
    assert any("already" in t for t in ephemeral_texts(slack))


def test_name_taken_gets_numeric_suffix(slack: SlackEmulator, bot_server: RunningBot) -> None:
    today = datetime.now(UTC).strftime("%Y%m%d")
    slack.add_channel("C_OLD", name=f"inc-{today}-dns-broken", members=[])
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open dns broken")
    incident = open_incident(slack, bot_server)
    assert incident.channel_name == f"inc-{today}-dns-broken-2"
    failed = [c for c in slack.calls if c.method == "conversations.create" and not c.ok]
    assert [c.error for c in failed] == ["name_taken"]


def test_mention_injection_in_title_is_escaped(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 <!channel> <@U_BOB> broke & fled")
    incident = open_incident(slack, bot_server)
    announcement = slack.messages(STAKEHOLDER_CHANNEL)[0]
    assert "<!channel>" not in announcement["text"] and "&lt;!channel&gt;" in announcement["text"]
    assert "<@U_BOB>" not in announcement["text"]
    assert incident.title == "<!channel> <@U_BOB> broke & fled"
