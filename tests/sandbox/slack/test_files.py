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


def _upload(emu: SlackEmulator, web: WebClient, channel: str | None, *, name: str = "postmortem.md",
            timeout_web: WebClient | None = None) -> str:
    """Ticket and bytes, then the completion (into ``channel`` when given); returns the file id."""
    ticket = web.api_call("files.getUploadURLExternal", params={"filename": name, "length": len(CONTENT)})
    requests.post(ticket["upload_url"], data=CONTENT, timeout=5)
    params: dict[str, object] = {"files": [{"id": ticket["file_id"], "title": "Draft"}]}
    if channel is not None:
        params["channel_id"] = channel
    (timeout_web or web).api_call("files.completeUploadExternal", json=params)
    return str(ticket["file_id"])


def test_files_info_lists_where_a_completed_upload_is_shared(emu: SlackEmulator, web: WebClient) -> None:
    file_id = _upload(emu, web, "C_STAKE")
    answer = web.files_info(file=file_id)
    (message,) = emu.messages("C_STAKE")
    file = answer["file"]
    assert (file["id"], file["name"], file["title"], file["size"]) == (file_id, "postmortem.md", "Draft", len(CONTENT))
    assert (file["channels"], file["groups"], file["ims"], file["is_public"]) == (["C_STAKE"], [], [], True)
    (share,) = file["shares"]["public"]["C_STAKE"]
    assert (share["ts"], share["channel_name"], share["share_user_id"]) == (message["ts"], "stakeholders", "U_BOT")
    assert answer["comments"] == [] and "private" not in file["shares"]

    emu.add_channel("C_SECRET", name="secret", members=["U_BOT"], is_private=True)
    private = web.files_info(file=_upload(emu, web, "C_SECRET", name="b.md"))["file"]
    assert (private["channels"], private["groups"], private["is_public"]) == ([], ["C_SECRET"], False)
    assert list(private["shares"]) == ["private"] and list(private["shares"]["private"]) == ["C_SECRET"]

    unshared = web.files_info(file=_upload(emu, web, None, name="c.md"))["file"]
    assert (unshared["channels"], unshared["groups"], unshared["shares"]) == ([], [], {})


def test_files_info_errors(emu: SlackEmulator, web: WebClient) -> None:
    def error(**params: object) -> str:
        with pytest.raises(SlackApiError) as caught:
            web.api_call("files.info", http_verb="GET", params=params)
        return str(caught.value.response["error"])

    assert error(file="F_NOPE") == "file_not_found"
    pending = web.api_call("files.getUploadURLExternal", params={"filename": "a.md", "length": 3})["file_id"]
    assert error(file=pending) == "file_not_found"  # a ticket is not a file until its upload is completed
    assert error() == "invalid_arguments"
    with pytest.raises(SlackApiError) as caught:  # form arguments only, like Slack: a JSON body is ignored
        web.api_call("files.info", json={"file": pending})
    assert caught.value.response["error"] == "invalid_arguments"


def test_a_completion_whose_answer_is_lost_still_shares_the_file(emu: SlackEmulator, web: WebClient) -> None:
    emu.server_error("files.completeUploadExternal", processed=True)
    with pytest.raises(SlackApiError) as caught:
        _upload(emu, web, "C_STAKE")
    assert caught.value.response.status_code == 500
    (file,) = emu.files
    assert web.files_info(file=file.id)["file"]["channels"] == ["C_STAKE"]
    assert len(emu.messages("C_STAKE")) == 1


def test_a_delayed_completion_is_in_flight_then_lands_after_the_client_gave_up(
        emu: SlackEmulator, web: WebClient) -> None:
    emu.delay("files.completeUploadExternal", 1.0)
    impatient = WebClient(token=web.token, base_url=emu.api_url, timeout=0.2, retry_handlers=[])
    with pytest.raises(TimeoutError):
        _upload(emu, web, "C_STAKE", timeout_web=impatient)
    assert emu.in_flight("files.completeUploadExternal") == 1
    assert emu.calls_to("files.completeUploadExternal") == []
    (call,) = emu.wait_for_calls("files.completeUploadExternal", 1, timeout=5)
    assert call.ok and emu.in_flight("files.completeUploadExternal") == 0
    (file,) = emu.files
    assert file.completed and web.files_info(file=file.id)["file"]["channels"] == ["C_STAKE"]
