"""``views.open``/``update``/``push``: modals, gated by single-use three-second ``trigger_id``s."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sandbox.slack.blocks import VIEW_MAX_BLOCKS, check_blocks
from sandbox.slack.errors import ApiError
from sandbox.slack.model import View
from sandbox.slack.webapi import ApiRequest, MethodRegistry

TITLE_MAX_LENGTH = 24
PRIVATE_METADATA_MAX_LENGTH = 3000
CALLBACK_ID_MAX_LENGTH = 255


def check_view(view: Any) -> dict[str, Any]:
    """A modal definition Slack would accept, else ``invalid_arguments`` with its reasons."""
    if not isinstance(view, dict):
        raise ApiError.invalid_arguments("view must be a JSON object")
    problems: list[str] = []
    if view.get("type") != "modal":
        problems.append("view.type must be modal [json-pointer:/view/type]")
    title = view.get("title")
    if not isinstance(title, dict) or title.get("type") != "plain_text" or not title.get("text"):
        problems.append("view.title must be a plain_text object [json-pointer:/view/title]")
    elif len(str(title["text"])) > TITLE_MAX_LENGTH:
        problems.append(f"must be less than {TITLE_MAX_LENGTH + 1} characters [json-pointer:/view/title/text]")
    if len(str(view.get("private_metadata", ""))) > PRIVATE_METADATA_MAX_LENGTH:
        problems.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
    if len(str(view.get("callback_id", ""))) > CALLBACK_ID_MAX_LENGTH:
        problems.append("must be less than 256 characters [json-pointer:/view/callback_id]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        problems.append("view.blocks must be an array [json-pointer:/view/blocks]")
    elif any(isinstance(b, dict) and b.get("type") == "input" for b in blocks) and not view.get("submit"):
        problems.append("a view with input blocks needs submit [json-pointer:/view/submit]")
    if problems:
        raise ApiError.invalid_arguments(*problems)
    check_blocks(blocks, max_blocks=VIEW_MAX_BLOCKS)
    return view


def _new_hash() -> str:
    return f"{time.time():.6f}.{secrets.token_hex(4)}"


def register(api: MethodRegistry) -> None:
    """Add the view methods to ``api``."""

    def trigger_arg(req: ApiRequest) -> str:
        trigger = req.get("trigger_id") or req.get("interactivity_pointer")
        if trigger is None:
            raise ApiError.invalid_arguments("missing required field: trigger_id")
        return trigger

    @api.method("views.open", required=("view",))
    def views_open(req: ApiRequest) -> dict[str, Any]:
        trigger = trigger_arg(req)
        definition = check_view(req.json_value("view"))
        ws = req.workspace
        user = ws.exchange_trigger(trigger)
        view = View(ws.new_id("V"), user, definition, _new_hash(), ws.team_id, ws.app_id, ws.bot_id)
        ws.views[view.id] = view
        return {"view": view.to_api()}

    @api.method("views.update", required=("view",))
    def views_update(req: ApiRequest) -> dict[str, Any]:
        ws = req.workspace
        view_id, external_id = req.get("view_id"), req.get("external_id")
        if view_id is None and external_id is None:
            raise ApiError.invalid_arguments("missing required field: view_id or external_id")
        view = ws.views.get(view_id or "") if view_id else next(
            (v for v in ws.views.values() if v.definition.get("external_id") == external_id), None)
        if view is None or not view.is_open:
            raise ApiError("not_found")
        expected = req.get("hash")
        if expected is not None and expected != view.hash:
            raise ApiError("hash_conflict")
        view.history.append(view.definition)
        view.definition = check_view(req.json_value("view"))
        view.hash = _new_hash()
        return {"view": view.to_api()}

    @api.method("views.push", required=("view",))
    def views_push(req: ApiRequest) -> dict[str, Any]:
        trigger = trigger_arg(req)
        definition = check_view(req.json_value("view"))
        ws = req.workspace
        user = ws.exchange_trigger(trigger)
        stack = [v for v in ws.views.values() if v.user == user and v.is_open]
        if not stack:
            raise ApiError("not_found")
        top = stack[-1]
        view = View(ws.new_id("V"), user, definition, _new_hash(), ws.team_id, ws.app_id, ws.bot_id,
                    root_view_id=top.root_view_id or top.id, previous_view_id=top.id)
        ws.views[view.id] = view
        return {"view": view.to_api()}
