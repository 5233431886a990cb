"""The Slack app manifests request exactly the bot scopes and events the code needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import CHANNEL_LOG_EVENTS
from bot.commands import build_registry
from bot.slack_scopes import METHOD_SCOPES, required_bot_scopes, scopes_for_methods, subscriptions_for_events
from tests.deploy.slack_calls import find_slack_calls

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HTTP_MANIFEST = DEPLOY / "slack-app-manifest.yaml"
SOCKET_MANIFEST = DEPLOY / "slack-app-manifest.socket-mode.yaml"
REQUEST_URL = "https://bot.example.com/slack/events"


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def called_methods() -> set[str]:
    calls = find_slack_calls()
    assert not calls.unresolved, f"Slack calls whose method is not a literal (make it one): {calls.unresolved}"
    return set(calls.methods)


def test_scanner_finds_the_chokepoint_paths(called_methods: set[str]) -> None:
    # One per shape: .call("…") in bot/, a helper taking `method` (chat/channel_log._paginate), workers/.
    assert {"conversations.create", "conversations.history", "files.completeUploadExternal", "views.open"} <= called_methods


def test_every_called_method_has_documented_scopes(called_methods: set[str]) -> None:
    unknown = sorted(called_methods - set(METHOD_SCOPES))
    assert not unknown, f"add the required bot scopes of {unknown} to bot/slack_scopes.py METHOD_SCOPES"


@pytest.mark.parametrize("manifest", [HTTP_MANIFEST, SOCKET_MANIFEST], ids=["http", "socket-mode"])
def test_manifest_scopes_are_exactly_what_the_code_uses(manifest: Path, called_methods: set[str]) -> None:
    needed = required_bot_scopes(called_methods, CHANNEL_LOG_EVENTS)
    declared = _load(manifest)["oauth_config"]["scopes"]["bot"]
    assert len(declared) == len(set(declared)), "a scope is listed twice"
    missing, extra = needed - set(declared), set(declared) - needed
    assert not missing and not extra, (
        f"{manifest.name}: missing {sorted(missing)} (the code calls methods that need them), "
        f"extra {sorted(extra)} (nothing in the code needs them)"
    )
    assert "user" not in _load(manifest)["oauth_config"]["scopes"], "the bot needs no user scopes"


@pytest.mark.parametrize("manifest", [HTTP_MANIFEST, SOCKET_MANIFEST], ids=["http", "socket-mode"])
def test_manifest_events_command_and_interactivity_match_the_app(manifest: Path) -> None:
    document = _load(manifest)
    assert sorted(document["settings"]["event_subscriptions"]["bot_events"]) == sorted(
        subscriptions_for_events(CHANNEL_LOG_EVENTS))
    commands = [c["command"] for c in document["features"]["slash_commands"]]
    assert commands == [build_registry().slash] == ["/k8s"]
    assert document["settings"]["interactivity"]["is_enabled"] is True
    assert document["features"]["bot_user"]["display_name"]


def test_http_manifest_points_every_request_url_at_the_bolt_endpoint() -> None:
    document = _load(HTTP_MANIFEST)
    settings = document["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == REQUEST_URL
    assert settings["interactivity"]["request_url"] == REQUEST_URL
    assert [c["url"] for c in document["features"]["slash_commands"]] == [REQUEST_URL]
    from bot.server import SLACK_PATH

    assert REQUEST_URL.endswith(SLACK_PATH)


def test_socket_mode_manifest_has_no_request_urls() -> None:
    document = _load(SOCKET_MANIFEST)
    assert document["settings"]["socket_mode_enabled"] is True
    text = SOCKET_MANIFEST.read_text()
    assert "request_url" not in text and "url:" not in text.replace("request_url", "")
    http = _load(HTTP_MANIFEST)
    assert document["oauth_config"] == http["oauth_config"]
    assert document["settings"]["event_subscriptions"]["bot_events"] == http["settings"]["event_subscriptions"]["bot_events"]


def test_the_scope_map_is_consistent() -> None:
    assert scopes_for_methods(["auth.test", "views.open", "chat.getPermalink"]) == set()
    assert scopes_for_methods(["chat.postMessage", "chat.update"]) == {"chat:write"}
    with pytest.raises(KeyError, match="METHOD_SCOPES"):
        scopes_for_methods(["admin.apps.approve"])
    for method, scopes in METHOD_SCOPES.items():
        assert "." in method and all(":" in scope for scope in scopes), method


def test_scanner_sees_webclient_methods_and_unresolved_calls(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "def f(client, slack, name):\n"
        "    client.views_open(trigger_id='t', view={})\n"
        "    slack.call('pins.add', channel='C')\n"
        "    slack.call(name)\n"
    )
    calls = find_slack_calls([source])
    assert set(calls.methods) == {"views.open", "pins.add"}
    assert len(calls.unresolved) == 1
