"""The external file upload flow: ticket, byte upload to the emulator, completion and share.

1. ``files.getUploadURLExternal`` (``filename``, ``length``) hands out an ``upload_url`` on the
   emulator and a ``file_id``;
2. the client POSTs the bytes there (raw body or a multipart form, as Slack accepts both);
3. ``files.completeUploadExternal`` (``files=[{"id", "title"}]``, optional ``channel_id``,
   ``initial_comment``, ``thread_ts``) finalises the file and shares it as a message.

``files.info`` (``file``) describes a completed file and where it is shared; a file whose upload was
never completed does not exist yet for the API (``file_not_found``), as with any unknown ID.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sandbox.slack.errors import ApiError
from sandbox.slack.methods.common import channel_arg
from sandbox.slack.model import File
from sandbox.slack.state import Workspace
from sandbox.slack.webapi import ApiRequest, HttpReply, MethodRegistry, multipart_fields


def register(api: MethodRegistry) -> None:
    """Add the file upload methods to ``api``."""

    @api.method("files.getUploadURLExternal", required=("filename", "length"), json_input=False)
    def get_upload_url(req: ApiRequest) -> dict[str, Any]:
        length = req.integer("length", 0, error="invalid_arguments")
        if length <= 0:
            raise ApiError.invalid_arguments("length must be a positive integer")
        ws = req.workspace
        file = File(ws.new_id("F"), req.require("filename"), length, req.user_id, int(time.time()),
                    secrets.token_urlsafe(18), title=req.get("alt_txt") or "")
        ws.files[file.id] = file
        return {"upload_url": f"{ws.base_url}upload/v1/{file.upload_key}", "file_id": file.id}

    @api.method("files.completeUploadExternal", required=("files",))
    def complete_upload(req: ApiRequest) -> dict[str, Any]:
        entries = req.json_value("files")
        if not isinstance(entries, list) or not entries or not all(
                isinstance(e, dict) and e.get("id") for e in entries):
            raise ApiError.invalid_arguments("files must be a non-empty array of {id, title}")
        ws = req.workspace
        files: list[File] = []
        for entry in entries:
            file = ws.files.get(str(entry["id"]))
            if file is None or file.content is None or file.completed:
                raise ApiError("file_not_found")
            files.append(file)
        channel = None
        channel_ref = req.get("channel_id") or (req.get("channels") or "").split(",")[0] or None
        if channel_ref:
            req.params["channel_id"] = channel_ref
            channel = channel_arg(req, "channel_id", member=True, writable=True)
        for file, entry in zip(files, entries, strict=True):
            file.title = str(entry.get("title") or file.title or file.filename)
            file.completed = True
        if channel is not None:
            comment = req.get("initial_comment") or ""
            message = ws.post(channel.id, req.user_id, comment, thread_ts=req.get("thread_ts"), as_bot=True,
                              files=[f.to_api(ws.base_url) for f in files])
            for file in files:
                file.channel, file.initial_comment = channel.id, comment or None
                file.thread_ts, file.message_ts = message.thread_ts, message.ts
        return {"files": [{"id": f.id, "title": f.title} for f in files]}

    @api.method("files.info", required=("file",), json_input=False)
    def info(req: ApiRequest) -> dict[str, Any]:
        ws = req.workspace
        file = ws.files.get(req.require("file"))
        if file is None or not file.completed:
            raise ApiError("file_not_found")
        channel = ws.channel(file.channel) if file.channel else None
        return {"file": file.info_api(ws.base_url, ws.team_id, channel), "comments": [],
                "response_metadata": {"next_cursor": ""}}


def receive_upload(workspace: Workspace, key: str, headers: dict[str, str], body: bytes) -> HttpReply:
    """The upload URL's answer: store the bytes (raw or the first multipart file) for the ticket."""
    with workspace.lock:
        file = next((f for f in workspace.files.values() if f.upload_key == key), None)
        if file is None or file.completed:
            return HttpReply.text(404, "file_not_found")
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        content = body
        if content_type.lower().startswith("multipart/form-data"):
            parts = multipart_fields(content_type, body)
            binary = [v for v in parts.values() if isinstance(v, bytes)]
            content = binary[0] if binary else str(parts.get("file", "")).encode()
        file.content = content
        return HttpReply.text(200, f"OK - {len(content)}")
