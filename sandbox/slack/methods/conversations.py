"""``conversations.*``: channels, membership, topics, history and threads."""

from __future__ import annotations

import re
import time
from typing import Any

from sandbox.slack.errors import ApiError
from sandbox.slack.methods.common import channel_arg, in_window, page, valid_ts
from sandbox.slack.model import Message, ts_key
from sandbox.slack.webapi import ApiRequest, MethodRegistry, decode_cursor, encode_cursor

NAME_MAX_LENGTH = 80
TOPIC_MAX_LENGTH = 250
INVITE_MAX_USERS = 100
_NAME_ALLOWED = re.compile(r"^[a-z0-9_-]+$")


def validate_channel_name(name: str | None) -> str:
    """Slack's naming rules: lowercase letters, digits, ``-`` and ``_``, at most 80 characters."""
    if not name:
        raise ApiError("invalid_name_required")
    if len(name) > NAME_MAX_LENGTH:
        raise ApiError("invalid_name_maxlength")
    if not _NAME_ALLOWED.match(name):
        raise ApiError("invalid_name_specials")
    if not re.search(r"[a-z0-9]", name):
        raise ApiError("invalid_name_punctuation")
    return name


def listed(messages: list[Message], include_all_metadata: bool) -> list[dict[str, Any]]:
    """Messages as history/replies return them: message ``metadata`` only when ``include_all_metadata`` is set.

    Slack documents the flag as "return all metadata associated with messages, defaults to false"; the
    emulator takes the strict reading (none without it), so a client that forgets the flag fails here.
    """
    out = [m.to_api() for m in messages]
    if not include_all_metadata:
        for item in out:
            item.pop("metadata", None)
    return out


def register(api: MethodRegistry) -> None:
    """Add the ``conversations.*`` methods to ``api``."""

    @api.method("conversations.create")
    def create(req: ApiRequest) -> dict[str, Any]:
        name = validate_channel_name(req.get("name"))
        ws = req.workspace
        if any(c.name == name for c in ws.channels.values()):
            raise ApiError("name_taken")
        channel = ws.add_channel(None, name=name, creator=req.user_id, members=[req.user_id],
                                 is_private=req.flag("is_private"), system_messages=True)
        return {"channel": channel.to_api(req.user_id)}

    @api.method("conversations.invite", required=("channel",))
    def invite(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req, writable=True)
        users = [u.strip() for u in (req.get("users") or "").split(",") if u.strip()]
        if not users:
            raise ApiError("no_user")
        if len(users) > INVITE_MAX_USERS:
            raise ApiError.invalid_arguments(f"users: at most {INVITE_MAX_USERS} user IDs per call")
        if req.user_id not in channel.members:
            raise ApiError("not_in_channel")
        errors: list[dict[str, Any]] = []
        valid: list[str] = []
        for user_id in users:
            code = None
            if user_id == req.user_id:
                code = "cant_invite_self"
            elif user_id not in req.workspace.users or req.workspace.users[user_id].deleted:
                code = "user_not_found"
            elif user_id in channel.members:
                code = "already_in_channel"
            if code:
                errors.append({"user": user_id, "ok": False, "error": code})
            else:
                valid.append(user_id)
        if errors and not req.flag("force"):
            raise ApiError(errors[0]["error"], errors=errors)
        for user_id in valid:
            req.workspace.join(channel, user_id, inviter=req.user_id)
        result: dict[str, Any] = {"channel": channel.to_api(req.user_id)}
        if errors:
            result["errors"] = errors
        return result

    def set_text(req: ApiRequest, field: str, subtype: str, label: str) -> dict[str, Any]:
        channel = channel_arg(req, member=True, writable=True)
        value = req.params.get(field)
        if value is None:
            raise ApiError.invalid_arguments(f"missing required field: {field}")
        value = str(value)
        if len(value) > TOPIC_MAX_LENGTH:
            raise ApiError("too_long")
        setattr(channel, field, value)
        setattr(channel, f"{field}_meta", (req.user_id, int(time.time())))
        req.workspace.post(channel.id, req.user_id, f"set the channel {label}: {value}", subtype=subtype,
                           extra={field: value})
        return {"channel": channel.to_api(req.user_id)}

    @api.method("conversations.setTopic", required=("channel",))
    def set_topic(req: ApiRequest) -> dict[str, Any]:
        return set_text(req, "topic", "channel_topic", "topic")

    @api.method("conversations.setPurpose", required=("channel",))
    def set_purpose(req: ApiRequest) -> dict[str, Any]:
        return set_text(req, "purpose", "channel_purpose", "description")

    @api.method("conversations.info", required=("channel",), json_input=False)
    def info(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req)
        body = channel.to_api(req.user_id)
        if not req.flag("include_num_members"):
            body.pop("num_members", None)
        return {"channel": body}

    @api.method("conversations.join", required=("channel",))
    def join(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req)
        if channel.is_private:
            raise ApiError("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise ApiError("is_archived")
        if req.user_id in channel.members:
            return {"channel": channel.to_api(req.user_id), "warning": "already_in_channel",
                    "response_metadata": {"warnings": ["already_in_channel"]}}
        req.workspace.join(channel, req.user_id)
        return {"channel": channel.to_api(req.user_id)}

    @api.method("conversations.history", required=("channel",))
    def history(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req, member=True)
        limit = req.integer("limit", 100, maximum=999)
        oldest = valid_ts(req.get("oldest"), "invalid_ts_oldest")
        latest = valid_ts(req.get("latest"), "invalid_ts_latest")
        inclusive = req.flag("inclusive")
        items = [m for m in reversed(req.workspace.history(channel.id)) if in_window(m.ts, oldest, latest, inclusive)]
        resume = decode_cursor(req.get("cursor"), "next_ts")
        start = 0 if resume is None else next((i for i, m in enumerate(items) if ts_key(m.ts) <= ts_key(resume)),
                                              len(items))
        chunk, more = page(items, start, limit)
        result: dict[str, Any] = {"messages": listed(chunk, req.flag("include_all_metadata")), "has_more": more,
                                  "pin_count": len(channel.pins)}
        if more:
            result["response_metadata"] = {"next_cursor": encode_cursor("next_ts", items[start + limit].ts)}
        return result

    @api.method("conversations.replies", required=("channel", "ts"), json_input=False)
    def replies(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req, member=True)
        limit = req.integer("limit", 1000, maximum=1000)
        oldest = valid_ts(req.get("oldest"), "invalid_ts_oldest")
        latest = valid_ts(req.get("latest"), "invalid_ts_latest")
        inclusive = req.flag("inclusive")
        thread = req.workspace.thread(channel.id, req.require("ts"))
        if not thread:
            raise ApiError("thread_not_found")
        parent, rest = thread[0], [m for m in thread[1:] if in_window(m.ts, oldest, latest, inclusive)]
        resume = decode_cursor(req.get("cursor"), "next_ts")
        if resume is None:
            items, start = [parent, *rest], 0
        else:
            items = rest
            start = next((i for i, m in enumerate(items) if ts_key(m.ts) >= ts_key(resume)), len(items))
        chunk, more = page(items, start, limit)
        result: dict[str, Any] = {"messages": listed(chunk, req.flag("include_all_metadata")), "has_more": more}
        if more:
            result["response_metadata"] = {"next_cursor": encode_cursor("next_ts", items[start + limit].ts)}
        return result

    @api.method("conversations.members", required=("channel",), json_input=False)
    def members(req: ApiRequest) -> dict[str, Any]:
        channel = channel_arg(req)
        limit = req.integer("limit", 100, maximum=1000)
        resume = decode_cursor(req.get("cursor"), "user")
        start = 0 if resume is None else (channel.members.index(resume) if resume in channel.members else 0)
        chunk, more = page(list(channel.members), start, limit)
        cursor = encode_cursor("user", channel.members[start + limit]) if more else ""
        return {"members": chunk, "response_metadata": {"next_cursor": cursor}}

    @api.method("conversations.list", json_input=False)
    def list_(req: ApiRequest) -> dict[str, Any]:
        types = {t.strip() for t in (req.get("types") or "public_channel").split(",") if t.strip()}
        if types - {"public_channel", "private_channel", "mpim", "im"}:
            raise ApiError("invalid_types")
        limit = req.integer("limit", 100, maximum=999)
        visible = [c for c in req.workspace.channels.values()
                   if (("private_channel" in types and c.is_private and req.user_id in c.members)
                       or ("public_channel" in types and not c.is_private))
                   and not (req.flag("exclude_archived") and c.is_archived)]
        ids = [c.id for c in visible]
        resume = decode_cursor(req.get("cursor"), "channel")
        start = ids.index(resume) if resume in ids else 0
        chunk, more = page(visible, start, limit)
        cursor = encode_cursor("channel", ids[start + limit]) if more else ""
        return {"channels": [c.to_api(req.user_id) for c in chunk], "response_metadata": {"next_cursor": cursor}}
