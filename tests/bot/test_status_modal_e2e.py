"""The status-update modal, over HTTP and Socket Mode: a click opens it, an empty submit is refused in place.

*Post update* on the incident header → the bot acknowledges, then calls ``views.open`` with the click's
``trigger_id`` (valid three seconds, once) → the person submits: an empty update is answered in the
acknowledgement with ``response_action: errors`` (the modal stays open, the field says why), a real
one closes the modal and is posted in the channel and the stakeholder thread.
"""

from __future__ import annotations

import json

from chat.views import UPDATE_BLOCK, UPDATE_INPUT
from sandbox.slack import SlackEmulator
from tests.bot.helpers import open_incident, wait_until
from tests.fixtures.slack import STAKEHOLDER_CHANNEL, RunningBot, both_transports


@both_transports
def test_update_modal_opens_refuses_empty_text_and_posts(slack: SlackEmulator, bot_server: RunningBot) -> None:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 Queue backlog")
    incident = open_incident(slack, bot_server)
    header = slack.messages(incident.channel_id)[0]
    clicked = slack.click_button("U_ALICE", incident.channel_id, header["ts"], "incident_post_update")
    assert clicked.ok
    wait_until(lambda: any(v.is_open for v in slack.views.values()))
    (opened,) = slack.calls_to("views.open")
    assert opened.ok and opened.params["trigger_id"]

    refused = slack.submit_view("U_ALICE", "status_update_modal", {UPDATE_BLOCK: {UPDATE_INPUT: "  "}})
    assert refused.ok
    body = json.loads(refused.body)
    assert body["response_action"] == "errors" and UPDATE_BLOCK in body["errors"]
    assert [v.is_open for v in slack.views.values()] == [True]

    accepted = slack.submit_view("U_ALICE", "status_update_modal",
                                 {UPDATE_BLOCK: {UPDATE_INPUT: "Consumers scaled out; backlog draining."}})
    assert accepted.ok and not accepted.body.strip()
    assert [v.is_open for v in slack.views.values()] == [False]
    announcement = slack.messages(STAKEHOLDER_CHANNEL)[0]
    wait_until(lambda: any("backlog draining" in m["text"]
                           for m in slack.replies(STAKEHOLDER_CHANNEL, announcement["ts"])))
    # The outbox drains each channel on its own: the stakeholder thread landing says nothing about this one.
    wait_until(lambda: any("backlog draining" in m["text"] for m in slack.messages(incident.channel_id)))
    updates = bot_server.services.store.timeline(incident.id).entries({"status_update"})
    assert [(e.actor, e.data["text"]) for e in updates] == [("U_ALICE", "Consumers scaled out; backlog draining.")]
