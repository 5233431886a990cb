"""``chat.*``, ``pins.add`` and ``reactions.add``: what the bot writes into channels."""

from __future__ import annotations

import re
from typing import Any

from sandbox.slack.blocks import check_blocks, with_block_ids
from sandbox.slack.errors import ApiError
from sandbox.slack.methods.common import channel_arg, message_arg, valid_ts
from sandbox.slack.webapi import ApiRequest, MethodRegistry

TEXT_TRUNCATE_AT = 40_000
"""Slack truncates message text longer than this (``chat.postMessage``)."""
_EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]+(::skin-tone-[2-6])?$")


def message_content(req: ApiRequest) -> tuple[str, list[dict[str, Any]] | None]:
    """``text`` and checked ``blocks`` of a posting call (``no_text`` when there is neither)."""
    raw = req.params.get("text")
    text = "" if raw is None else str(raw)
    blocks = req.json_value("blocks", error="invalid_blocks_format")
    attachments = req.json_value("attachments", error="invalid_attachments")
    if blocks is not None:
        blocks = with_block_ids(check_blocks(blocks)) or None
    if not text and not blocks and not attachments:
        raise ApiError("no_text")
    return text[:TEXT_TRUNCATE_AT], blocks


def register(api: MethodRegistry) -> None:
    """Add the message-writing methods to ``api``."""

    @api.method("chat.postMessage")
    def post_message(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req, member=True, writable=True)
        text, blocks = message_content(req)
        metadata = req.json_value("metadata", error="invalid_metadata_format")
        extra = {"metadata": metadata} if isinstance(metadata, dict) and metadata.get("event_type") else None
        message = req.workspace.post(channel.id, req.user_id, text, blocks=blocks, thread_ts=req.get("thread_ts"),
                                     as_bot=True, reply_broadcast=req.flag("reply_broadcast"), extra=extra)
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api()}

    @api.method("chat.update", required=("channel", "ts"))
    def update(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req, writable=True)
        message = message_arg(req, channel, "ts")
        if message.user != req.user_id:
            raise ApiError("cant_update_message")
        has_text = req.params.get("text") not in (None, "")
        blocks = req.json_value("blocks", error="invalid_blocks_format")
        if not has_text and not blocks:
            raise ApiError("no_text")
        if blocks is not None:
            message.blocks = with_block_ids(check_blocks(blocks)) or None
        if has_text:
            message.text = str(req.params["text"])[:TEXT_TRUNCATE_AT]
        message.edited = {"user": req.user_id, "ts": req.workspace.clock.next()}
        return {"channel": channel.id, "ts": message.ts, "text": message.text, "message": message.to_api()}

    @api.method("chat.postEphemeral", required=("channel", "user"))
    def post_ephemeral(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req, member=True, writable=True)
        user = req.require("user")
        if user not in channel.members:
            raise ApiError("user_not_in_channel")
        text, blocks = message_content(req)
        ts = req.workspace.clock.next()
        req.workspace.ephemeral.append({"channel": channel.id, "user": user, "text": text, "blocks": blocks,
                                        "thread_ts": req.get("thread_ts"), "ts": ts, "source": "chat.postEphemeral"})
        return {"message_ts": ts}

    @api.method("chat.getPermalink", required=("channel", "message_ts"), json_input=False)
    def get_permalink(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req)
        message = message_arg(req, channel, "message_ts")
        link = f"{req.workspace.base_url}archives/{channel.id}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    @api.method("pins.add", required=("channel",))
    def pins_add(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req, member=True)
        ts = valid_ts(req.get("timestamp"), "bad_timestamp")
        if ts is None:
            raise ApiError("no_item_specified")
        message = message_arg(req, channel, "timestamp")
        if message.pinned:
            raise ApiError("already_pinned")
        message.pinned = True
        channel.pins.append(message.ts)
        return {}

    @api.method("reactions.add", required=("channel", "name", "timestamp"))
    def reactions_add(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req)
        name = req.require("name")
        if not _EMOJI_NAME.match(name):
            raise ApiError("invalid_name")
        valid_ts(req.get("timestamp"), "bad_timestamp")
        message = message_arg(req, channel, "timestamp")
        users = message.reactions.setdefault(name, [])
        if req.user_id in users:
            raise ApiError("already_reacted")
        users.append(req.user_id)
        return {}
