"""The external upload flow: ticket, bytes (multipart or raw), completion sharing a file message."""

from __future__ import annotations

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import SlackEmulator

CONTENT = b"# Post-mortem\n\nAPI down for 12 minutes.\n"


def test_upload_flow_with_multipart_post(emu: SlackEmulator, web: WebClient) -> None:
    ticket = web.api_call("files.getUploadURLExternal", http_verb="GET",
                          params={"filename": "postmortem.md", "length": len(CONTENT)})
    assert ticket["upload_url"].startswith(emu.base_url + "upload/v1/")
    uploaded = requests.post(ticket["upload_url"], files={"file": ("postmortem.md", CONTENT, "text/markdown")},
                             timeout=5)
    assert uploaded.status_code == 200 and uploaded.text == f"OK - {len(CONTENT)}"
    done = web.files_completeUploadExternal(files=[{"id": ticket["file_id"], "title": "Post-mortem INC-1"}],
                                            channel_id="C_STAKE", initial_comment="Draft attached")
    assert done["files"] == [{"id": ticket["file_id"], "title": "Post-mortem INC-1"}]
    (file,) = emu.files
    assert (file.content, file.title, file.filename, file.channel) == (CONTENT, "Post-mortem INC-1",
                                                                        "postmortem.md", "C_STAKE")
    (message,) = emu.messages("C_STAKE")
    assert message["text"] == "Draft attached" and message["files"][0]["id"] == ticket["file_id"]
    assert file.message_ts == message["ts"]


def test_slack_sdk_files_upload_v2_raw_bytes(emu: SlackEmulator, web: WebClient) -> None:
    web.files_upload_v2(channel="C_STAKE", content=CONTENT.decode(), filename="notes.md", title="Notes")
    (file,) = emu.files
    assert (file.content, file.title, file.channel) == (CONTENT, "Notes", "C_STAKE")


def test_completion_needs_uploaded_bytes_and_membership(emu: SlackEmulator, web: WebClient) -> None:
    def error(**params: object) -> str:
        with pytest.raises(SlackApiError) as caught:
            web.api_call("files.completeUploadExternal", json=params)
        return str(caught.value.response["error"])

    ticket = web.api_call("files.getUploadURLExternal", params={"filename": "a.md", "length": 3})
    assert error(files=[{"id": ticket["file_id"]}], channel_id="C_STAKE") == "file_not_found"
    requests.post(ticket["upload_url"], data=b"abc", timeout=5)
    emu.add_channel("C_ELSEWHERE", name="elsewhere", members=["U_ALICE"])
    assert error(files=[{"id": ticket["file_id"]}], channel_id="C_ELSEWHERE") == "not_in_channel"
    assert error(files=[{"id": "F_NOPE"}]) == "file_not_found"
    assert web.api_call("files.completeUploadExternal", json={"files": [{"id": ticket["file_id"]}]})["ok"]
    assert emu.files[0].channel is None


def test_ticket_arguments_are_form_only(web: WebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        web.api_call("files.getUploadURLExternal", json={"filename": "a.md", "length": 3})
    assert caught.value.response["error"] == "invalid_arguments"
