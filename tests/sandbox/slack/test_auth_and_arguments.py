"""Token checks, unknown methods, missing arguments, and how Slack reads each body type."""

from __future__ import annotations

import json

import requests

from sandbox.slack import SlackEmulator
from tests.sandbox.slack.conftest import TOKEN


def _post(emu: SlackEmulator, method: str, **kwargs: object) -> dict[str, object]:
    response = requests.post(emu.api_url + method, timeout=5, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200
    return dict(response.json())


def test_missing_token_is_not_authed(emu: SlackEmulator) -> None:
    assert _post(emu, "auth.test")["error"] == "not_authed"


def test_wrong_token_is_invalid_auth(emu: SlackEmulator) -> None:
    assert _post(emu, "auth.test", headers={"Authorization": "Bearer xoxb-wrong"})["error"] == "invalid_auth"
    assert _post(emu, "auth.test", data={"token": "xoxb-wrong"})["error"] == "invalid_auth"


def test_token_as_form_field_or_query_works(emu: SlackEmulator) -> None:
    assert _post(emu, "auth.test", data={"token": TOKEN})["user_id"] == "U_BOT"
    assert _post(emu, f"auth.test?token={TOKEN}")["ok"] is True
    assert emu.calls[-1].params == {}


def test_token_inside_a_json_body_is_not_accepted(emu: SlackEmulator) -> None:
    body = _post(emu, "chat.postMessage", json={"token": TOKEN, "channel": "C_STAKE", "text": "hi"})
    assert body["error"] == "not_authed"
    assert emu.messages("C_STAKE") == []


def test_unknown_method(emu: SlackEmulator) -> None:
    body = _post(emu, "chat.postMessages", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (body["ok"], body["error"]) == (False, "unknown_method")
    assert emu.calls[-1].method == "chat.postMessages" and emu.calls[-1].error == "unknown_method"


def test_missing_required_argument_is_invalid_arguments(emu: SlackEmulator) -> None:
    body = _post(emu, "conversations.history", headers={"Authorization": f"Bearer {TOKEN}"})
    assert body["error"] == "invalid_arguments"
    assert body["response_metadata"] == {"messages": ["[ERROR] missing required field: channel"]}


def test_read_methods_ignore_json_bodies_like_slack(emu: SlackEmulator) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    parent = _post(emu, "chat.postMessage", headers=auth, json={"channel": "C_STAKE", "text": "parent"})["ts"]
    as_json = _post(emu, "conversations.replies", headers=auth, json={"channel": "C_STAKE", "ts": parent})
    assert as_json["error"] == "invalid_arguments"
    assert emu.calls[-1].ignored_params == {"channel": "C_STAKE", "ts": parent}
    as_form = _post(emu, "conversations.replies", headers=auth, data={"channel": "C_STAKE", "ts": parent})
    assert [m["text"] for m in as_form["messages"]] == ["parent"]
    assert _post(emu, "users.info", headers=auth, json={"user": "U_ALICE"})["error"] == "user_not_found"
    assert _post(emu, "users.info?user=U_ALICE", headers=auth)["user"]["name"] == "alice"


def test_json_without_charset_gets_slacks_warning(emu: SlackEmulator) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    body = _post(emu, "chat.postMessage", headers=headers, data=json.dumps({"channel": "C_STAKE", "text": "x"}))
    assert body["ok"] and body["warning"] == "missing_charset"


def test_blocks_as_a_json_string_in_a_form(emu: SlackEmulator) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    body = _post(emu, "chat.postMessage", data={"token": TOKEN, "channel": "C_STAKE", "text": "hi",
                                                "blocks": json.dumps(blocks)})
    assert body["message"]["blocks"][0]["text"]["text"] == "*hi*"
    assert body["message"]["blocks"][0]["block_id"]


def test_invalid_blocks_are_refused_with_slacks_pointers(emu: SlackEmulator) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    header = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    body = _post(emu, "chat.postMessage", headers=auth, json={"channel": "C_STAKE", "text": "t", "blocks": [header]})
    assert body["error"] == "invalid_blocks"
    assert body["response_metadata"]["messages"] == [  # type: ignore[index]
        "[ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text]"]
    buttons = {"type": "actions", "elements": [
        {"type": "button", "action_id": "same", "text": {"type": "plain_text", "text": "A"}},
        {"type": "button", "action_id": "same", "text": {"type": "plain_text", "text": "B"}}]}
    body = _post(emu, "chat.postMessage", headers=auth, json={"channel": "C_STAKE", "text": "t", "blocks": [buttons]})
    assert body["error"] == "invalid_blocks"
    assert _post(emu, "chat.postMessage", headers=auth, json={"channel": "C_STAKE"})["error"] == "no_text"
