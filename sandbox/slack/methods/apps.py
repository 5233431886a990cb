"""``apps.connections.open``: the app-level token buys a one-time Socket Mode WebSocket URL.

Slack's contract: the app-level token (``xapp-…``) in the Authorization header (a bot token gets
``not_allowed_token_type``, an unknown one ``invalid_auth``, a token passed as a form field
``not_authed``); the answer is ``{"ok": true, "url": "wss://…/link/?ticket=…&app_id=…"}``. Here
the URL is the emulator's own ``ws://`` endpoint on loopback (:mod:`sandbox.slack.socket_link`).
"""

from __future__ import annotations

from typing import Any

from sandbox.slack.errors import ApiError
from sandbox.slack.webapi import ApiRequest, MethodRegistry


def register(api: MethodRegistry) -> None:
    """Add ``apps.connections.open`` to ``api``."""

    @api.method("apps.connections.open", token_type="app")
    def connections_open(req: ApiRequest) -> dict[str, Any]:
        issue = req.workspace.socket_mode_url
        if issue is None:
            raise ApiError("internal_error")  # an emulator built without its Socket Mode endpoint
        return {"url": issue()}
