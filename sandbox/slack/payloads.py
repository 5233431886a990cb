"""The bodies Slack sends to apps: slash command forms, interaction payloads, event envelopes.

Pure functions of the workspace and their arguments; field names and shapes follow Slack's
documented payloads so Bolt parses them exactly as it would parse Slack's.
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.slack.model import Channel, Message, User, View
from sandbox.slack.state import Workspace


def _user(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": user.team_id}


def _team(ws: Workspace) -> dict[str, Any]:
    return {"id": ws.team_id, "domain": ws.team_name}


def slash_command(ws: Workspace, token: str, user: User, channel: Channel, text: str, command: str,
                  response_url: str, trigger_id: str) -> dict[str, str]:
    """Form fields of a slash command invocation."""
    return {
        "token": token, "team_id": ws.team_id, "team_domain": ws.team_name, "channel_id": channel.id,
        "channel_name": channel.name, "user_id": user.id, "user_name": user.name, "command": command, "text": text,
        "api_app_id": ws.app_id, "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": trigger_id,
    }


def block_actions(ws: Workspace, token: str, user: User, channel: Channel, message: dict[str, Any], *,
                  is_ephemeral: bool, action: dict[str, Any], response_url: str, trigger_id: str) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on an element of ``message``."""
    return {
        "type": "block_actions", "user": _user(user), "api_app_id": ws.app_id, "token": token,
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel.id,
                      "is_ephemeral": is_ephemeral},
        "trigger_id": trigger_id, "team": _team(ws), "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": channel.id, "name": channel.name}, "message": message, "state": {"values": {}},
        "response_url": response_url, "actions": [action],
    }


def view_submission(ws: Workspace, token: str, user: User, view: View, values: dict[str, Any],
                    private_metadata: str | None, trigger_id: str) -> dict[str, Any]:
    """A ``view_submission`` payload for ``view`` with ``state.values`` = ``values``."""
    rendered = view.to_api(values)
    if private_metadata is not None:
        rendered["private_metadata"] = private_metadata
    return {
        "type": "view_submission", "team": _team(ws), "user": _user(user), "api_app_id": ws.app_id,
        "token": token, "trigger_id": trigger_id, "view": rendered, "response_urls": [],
        "is_enterprise_install": False, "enterprise": None,
    }


def event_callback(ws: Workspace, token: str, event: dict[str, Any], event_id: str,
                   event_time: int | None = None) -> dict[str, Any]:
    """The Events API envelope around ``event``."""
    return {
        "token": token, "team_id": ws.team_id, "api_app_id": ws.app_id, "event": event, "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [{"enterprise_id": None, "team_id": ws.team_id, "user_id": ws.bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False, "event_context": f"4-emu-{event_id}",
    }


def url_verification(token: str, challenge: str) -> dict[str, Any]:
    """The handshake Slack sends when a Request URL is saved."""
    return {"token": token, "challenge": challenge, "type": "url_verification"}


def message_event(message: Message, channel: Channel) -> dict[str, Any]:
    """The ``message`` event for a new message."""
    event = message.to_api()
    event.update({"channel": channel.id, "event_ts": message.ts,
                  "channel_type": "group" if channel.is_private else "channel"})
    return event
