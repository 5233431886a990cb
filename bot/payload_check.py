"""Shape checks of Slack interactivity payloads, before Bolt sees them.

Bolt assumes Slack's shapes (``actions[0]["action_id"]``, ``view["callback_id"]``, …) and answers
HTTP 500 when a payload breaks them. Fuzzing found such payloads; this check turns them into a 400
with a reason, and nothing runs.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs


def _is_object_with_id(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("id"), str)


def malformed_reason(payload: Any) -> str | None:
    """Why ``payload`` cannot be a Slack interactivity payload, or ``None`` when its shape is fine."""
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        return "payload is not an object with a type"
    kind = payload["type"]
    if "user" in payload and not _is_object_with_id(payload["user"]):
        return "user must be an object with an id"
    if "channel" in payload and payload["channel"] is not None and not _is_object_with_id(payload["channel"]):
        return "channel must be an object with an id"
    if "team" in payload and payload["team"] is not None and not _is_object_with_id(payload["team"]):
        return "team must be an object with an id"
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions:
            return "block_actions needs a non-empty actions list"
        for action in actions:
            if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
                return "every action needs a string action_id"
            if "block_id" in action and not isinstance(action["block_id"], str):
                return "block_id must be a string"
    if kind in ("view_submission", "view_closed"):
        view = payload.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("callback_id"), str):
            return "view needs a string callback_id"
        if "state" in view and not isinstance(view["state"], dict):
            return "view.state must be an object"
    return None


def form_payload_problem(body: bytes) -> str | None:
    """For a form body carrying ``payload=`` (interactivity), why it is malformed; ``None`` otherwise."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if "payload" not in fields:
        return None
    try:
        payload = json.loads(fields["payload"][0])
    except json.JSONDecodeError:
        return "payload is not JSON"
    return malformed_reason(payload)
