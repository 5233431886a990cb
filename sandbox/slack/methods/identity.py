"""``auth.test``, ``users.info`` and ``usergroups.users.list``: who is who in the workspace."""

from __future__ import annotations

from typing import Any

from sandbox.slack.errors import ApiError
from sandbox.slack.webapi import ApiRequest, MethodRegistry


def register(api: MethodRegistry) -> None:
    """Add the identity methods to ``api``."""

    @api.method("auth.test")
    def auth_test(req: ApiRequest) -> dict[str, Any]:
        ws = req.workspace
        bot = ws.users[req.user_id]
        return {"url": ws.base_url, "team": ws.team_name, "user": bot.name, "team_id": ws.team_id,
                "user_id": bot.id, "bot_id": ws.bot_id, "is_enterprise_install": False}

    @api.method("users.info", json_input=False)
    def users_info(req: ApiRequest) -> dict[str, Any]:
        user = req.workspace.users.get(req.get("user") or "")
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.to_api()}

    @api.method("usergroups.users.list", required=("usergroup",), json_input=False)
    def usergroup_users(req: ApiRequest) -> dict[str, Any]:
        group = req.workspace.usergroups.get(req.require("usergroup"))
        if group is None or (not group.enabled and not req.flag("include_disabled")):
            raise ApiError("no_such_subteam")
        return {"users": list(group.users)}
