"""What Slack does with the bot's answers: ``response_url`` posts and acknowledgement bodies.

A ``response_url`` accepts up to five JSON posts within thirty minutes. ``response_type``
``in_channel`` posts visibly in the channel; anything else is ephemeral to the invoking user
(recorded in ``emulator.ephemeral``). ``replace_original``/``delete_original`` act on the message
that carried the clicked element; for interactions from a message Slack replaces the original
unless told ``replace_original: false``, which is why bots must send it explicitly.

A slash command's HTTP acknowledgement may carry the first reply (plain text or JSON) and is
shown the same way; a ``view_submission`` acknowledgement may carry a ``response_action``.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.slack.blocks import check_blocks
from sandbox.slack.client import Response
from sandbox.slack.errors import ApiError
from sandbox.slack.model import View
from sandbox.slack.server import HttpRequest
from sandbox.slack.state import Workspace
from sandbox.slack.webapi import HttpReply


def publish(ws: Workspace, body: dict[str, Any], *, channel: str, user: str, source: str,
            original_ts: str | None = None, original_is_ephemeral: bool = False,
            replace_by_default: bool = False) -> str | None:
    """Apply one reply body; Slack's error code (``no_text``, ``invalid_blocks``) or ``None``."""
    blocks = body.get("blocks")
    text = str(body.get("text") or "")
    with ws.lock:
        if body.get("delete_original") in (True, "true") and original_ts:
            if original_is_ephemeral:
                ws.ephemeral[:] = [e for e in ws.ephemeral if e.get("ts") != original_ts]
            elif ws.message(channel, original_ts) is not None:
                ws.delete(channel, original_ts)
            return None
        if blocks is not None:
            try:
                blocks = check_blocks(blocks) or None
            except ApiError as error:
                return error.code
        if not text and not blocks:
            return "no_text"
        replace = body.get("replace_original", replace_by_default) in (True, "true")
        if replace and original_ts:
            if original_is_ephemeral:
                for entry in ws.ephemeral:
                    if entry.get("ts") == original_ts:
                        entry.update({"text": text, "blocks": blocks, "source": source})
                return None
            message = ws.message(channel, original_ts)
            if message is not None:
                message.text, message.blocks = text, blocks
                return None
        if body.get("response_type") == "in_channel" and ws.channel(channel) is not None:
            ws.post(channel, ws.bot_user_id, text, blocks=blocks, thread_ts=body.get("thread_ts"), as_bot=True)
            return None
        ws.ephemeral.append({"channel": channel, "user": user, "text": text, "blocks": blocks,
                             "thread_ts": body.get("thread_ts"), "ts": ws.clock.next(), "source": source})
        return None


def receive_response_url(ws: Workspace, request: HttpRequest) -> HttpReply:
    """Handle a POST to ``/hooks/<kind>/<team>/<n>/<secret>``."""
    parts = request.path.strip("/").split("/")
    if len(parts) != 5:
        return HttpReply.text(404, "no_service")
    try:
        target = ws.use_response_url("/".join(parts[3:]))
    except LookupError as refused:
        return HttpReply.text(404, str(refused))
    try:
        body = json.loads(request.body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return HttpReply.text(400, "invalid_payload")
    if not isinstance(body, dict):
        return HttpReply.text(400, "invalid_payload")
    error = publish(ws, body, channel=target.channel, user=target.user, source="response_url",
                    original_ts=target.message_ts, original_is_ephemeral=target.original_is_ephemeral,
                    replace_by_default=target.kind == "actions" and target.message_ts is not None)
    return HttpReply.text(400, error) if error else HttpReply.text(200, "ok")


def apply_command_ack(ws: Workspace, response: Response, *, channel: str, user: str, deadline: float) -> None:
    """Show a slash command's acknowledgement body the way Slack does (ignored when late)."""
    if not response.ok or response.elapsed_seconds > deadline or not response.body.strip():
        return
    try:
        body = json.loads(response.body)
    except json.JSONDecodeError:
        body = {"text": response.body}
    if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
        publish(ws, body, channel=channel, user=user, source="ack")


def apply_view_ack(ws: Workspace, view: View, response: Response) -> None:
    """Close, keep (``errors``), update, push or clear modals per the acknowledgement."""
    try:
        body = response.json() if response.ok else None
    except json.JSONDecodeError:
        body = None
    action = body.get("response_action") if isinstance(body, dict) else None
    with ws.lock:
        if not response.ok or action == "errors":
            return
        if action == "update" and isinstance(body, dict) and isinstance(body.get("view"), dict):
            view.history.append(view.definition)
            view.definition = body["view"]
            return
        if action == "push" and isinstance(body, dict) and isinstance(body.get("view"), dict):
            pushed = View(ws.new_id("V"), view.user, body["view"], view.hash, ws.team_id, ws.app_id, ws.bot_id,
                          root_view_id=view.root_view_id or view.id, previous_view_id=view.id)
            ws.views[pushed.id] = pushed
            return
        if action == "clear":
            for other in ws.views.values():
                if other.user == view.user:
                    other.is_open = False
            return
        view.is_open = False
