"""Slash commands, response_url, button clicks, modals and trigger_id expiry."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import EmulatorError, SlackEmulator, UnknownObjectError
from tests.sandbox.slack.conftest import Reply, StubBot

BUTTONS = [{"type": "actions", "block_id": "incident", "elements": [
    {"type": "button", "action_id": "incident_resolve", "value": "INC-1",
     "text": {"type": "plain_text", "text": "Resolve"}}]}]
MODAL = {"type": "modal", "callback_id": "status_update_modal", "private_metadata": "INC-1",
         "title": {"type": "plain_text", "text": "Status update"}, "submit": {"type": "plain_text", "text": "Post"},
         "blocks": [{"type": "input", "block_id": "update", "label": {"type": "plain_text", "text": "Update"},
                     "element": {"type": "plain_text_input", "action_id": "text", "multiline": True}}]}


def _respond(url: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(url, json=body, timeout=5)


def test_response_url_records_ephemeral_and_in_channel(emu: SlackEmulator, bot: StubBot) -> None:
    emu.slash_command("U_ALICE", "C_STAKE", "help")
    url = bot.wait_for(1)[0].form()["response_url"]
    assert _respond(url, {"text": "only you", "response_type": "ephemeral"}).text == "ok"
    assert _respond(url, {"text": "everyone", "response_type": "in_channel"}).status_code == 200
    assert [(e["user"], e["channel"], e["text"], e["source"]) for e in emu.ephemeral] == [
        ("U_ALICE", "C_STAKE", "only you", "response_url")]
    assert [m["text"] for m in emu.messages("C_STAKE")] == ["everyone"]
    assert _respond(url, {}).status_code == 400


def test_response_url_is_good_for_five_posts(emu: SlackEmulator, bot: StubBot) -> None:
    emu.slash_command("U_ALICE", "C_STAKE", "help")
    url = bot.wait_for(1)[0].form()["response_url"]
    assert [_respond(url, {"text": f"#{i}"}).status_code for i in range(6)] == [200] * 5 + [404]
    assert _respond(emu.base_url + "hooks/commands/T_EMU/1/forged", {"text": "x"}).status_code == 404


def test_ack_body_is_shown_like_slack(emu: SlackEmulator, bot: StubBot) -> None:
    bot.responder = lambda r: Reply(body="Unknown command `frobnicate`")
    response = emu.slash_command("U_ALICE", "C_GENERAL", "frobnicate")
    assert response.status == 200 and "frobnicate" in response.body
    assert emu.ephemeral[0]["text"] == "Unknown command `frobnicate`" and emu.ephemeral[0]["source"] == "ack"
    assert emu.channels["C_GENERAL"].name == "c_general"
    bot.responder = lambda r: Reply(body=json.dumps({"response_type": "in_channel", "text": "visible"}))
    emu.slash_command("U_ALICE", "C_STAKE", "status")
    assert emu.messages("C_STAKE")[0]["text"] == "visible"


def test_click_button_payload_and_replace_original(emu: SlackEmulator, bot: StubBot, web: WebClient) -> None:
    ts = web.chat_postMessage(channel="C_STAKE", text="INC-1", blocks=BUTTONS)["ts"]
    emu.click_button("U_BOB", "C_STAKE", ts, "incident_resolve", "INC-1")
    payload = bot.wait_for(1)[0].payload()
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U_BOB"
    assert payload["container"] == {"type": "message", "message_ts": ts, "channel_id": "C_STAKE",
                                    "is_ephemeral": False}
    assert payload["channel"] == {"id": "C_STAKE", "name": "stakeholders"}
    assert payload["message"]["ts"] == ts and payload["message"]["blocks"] == BUTTONS
    action = payload["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "incident_resolve", "incident", "INC-1", "button")
    url = payload["response_url"]
    assert url.startswith(emu.base_url + "hooks/actions/")
    _respond(url, {"text": "just for you", "replace_original": False})
    assert emu.ephemeral[-1]["text"] == "just for you"
    _respond(url, {"text": "Resolved by <@U_BOB>"})  # Slack replaces the original by default
    assert emu.message("C_STAKE", ts)["text"] == "Resolved by <@U_BOB>"
    _respond(url, {"delete_original": True})
    assert emu.messages("C_STAKE") == []


def test_click_must_hit_a_real_element(emu: SlackEmulator, bot: StubBot, web: WebClient) -> None:
    ts = web.chat_postMessage(channel="C_STAKE", text="INC-1", blocks=BUTTONS)["ts"]
    with pytest.raises(UnknownObjectError):
        emu.click_button("U_BOB", "C_STAKE", ts, "incident_escalate", "INC-1")
    with pytest.raises(EmulatorError):
        emu.click_button("U_BOB", "C_STAKE", ts, "incident_resolve", "INC-2")
    with pytest.raises(UnknownObjectError):
        emu.click_button("U_BOB", "C_STAKE", "1.000001", "incident_resolve", "INC-1")


def test_modal_round_trip(emu: SlackEmulator, bot: StubBot, web: WebClient) -> None:
    ts = web.chat_postMessage(channel="C_STAKE", text="INC-1", blocks=BUTTONS)["ts"]
    emu.click_button("U_BOB", "C_STAKE", ts, "incident_resolve")
    trigger = bot.wait_for(1)[0].payload()["trigger_id"]
    view = web.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert view["callback_id"] == "status_update_modal" and emu.views[view["id"]].user == "U_BOB"

    bot.responder = lambda r: Reply(body=json.dumps({"response_action": "errors", "errors": {"update": "empty"}}))
    emu.submit_view("U_BOB", "status_update_modal", {"update": {"text": ""}})
    assert emu.views[view["id"]].is_open
    bot.responder = lambda r: Reply()
    emu.submit_view("U_BOB", "status_update_modal", {"update": {"text": "failing over"}})
    submission = bot.received[-1].payload()
    assert submission["type"] == "view_submission" and submission["user"]["id"] == "U_BOB"
    assert submission["view"]["private_metadata"] == "INC-1"
    assert submission["view"]["state"]["values"] == {
        "update": {"text": {"type": "plain_text_input", "value": "failing over"}}}
    assert not emu.views[view["id"]].is_open
    with pytest.raises(UnknownObjectError):
        emu.submit_view("U_BOB", "status_update_modal", {"update": {"text": "again"}})


def test_trigger_id_is_single_use_and_expires(emu: SlackEmulator, bot: StubBot, web: WebClient) -> None:
    def error(trigger: str) -> str:
        with pytest.raises(SlackApiError) as caught:
            web.views_open(trigger_id=trigger, view=MODAL)
        return str(caught.value.response["error"])

    emu.slash_command("U_ALICE", "C_STAKE", "update")
    trigger = bot.wait_for(1)[0].form()["trigger_id"]
    assert web.views_open(trigger_id=trigger, view=MODAL)["ok"]
    assert error(trigger) == "exchanged_trigger_id"
    assert error("123.456.abc") == "invalid_trigger_id"

    emu.trigger_ttl_seconds = 0.2
    emu.slash_command("U_ALICE", "C_STAKE", "update")
    late = bot.wait_for(2)[1].form()["trigger_id"]
    time.sleep(0.3)
    assert error(late) == "expired_trigger_id"


def test_views_update_checks_hash(emu: SlackEmulator, bot: StubBot, web: WebClient) -> None:
    emu.slash_command("U_ALICE", "C_STAKE", "update")
    view = web.views_open(trigger_id=bot.wait_for(1)[0].form()["trigger_id"], view=MODAL)["view"]
    updated = web.views_update(view_id=view["id"], hash=view["hash"], view={**MODAL, "private_metadata": "INC-2"})
    assert updated["view"]["private_metadata"] == "INC-2"
    with pytest.raises(SlackApiError) as caught:
        web.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert caught.value.response["error"] == "hash_conflict"
