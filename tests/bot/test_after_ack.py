"""The one after-ack wrapper: every listener acks on Bolt's thread and works on the post-ack pool, and every
button of the app (the risky actions' Confirm / Cancel / Proceed anyway included) is wired through it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from chat.recovery_blocks import ACTION_RESTORE_NODE, ACTION_UNDO, STEP_ACTION_IDS
from chat.schedule_blocks import ACTION_ESCALATION_DISMISS, ACTION_ESCALATION_ESCALATE, ACTION_ESCALATION_SNOOZE
from chat.alert_blocks import ACTION_RECOVERY_CHECKLIST, ACTION_TRIAGE_ATTACH, ACTION_TRIAGE_DISMISS, ACTION_TRIAGE_OPEN
from bot.after_ack import AfterAck, ButtonSpec
from bot.app import buttons, create_app
from service.lifecycle import Reply
from service.context import Context
from chat.action_blocks import ACTION_CANCEL, ACTION_CONFIRM, ACTION_PROCEED_ANYWAY
from chat.blocks import ACTION_ASSESS, ACTION_ESCALATE, ACTION_POST_UPDATE, ACTION_RESOLVE
from incident.errors import NotPermitted
from incident.settings import Settings
from incident.templates import TemplateRenderer


def _click(spec: ButtonSpec) -> tuple[list[str], list[dict[str, Any]]]:
    """Click ``spec`` through the wrapper; (the threads: ack's, then the handler's), the replies sent."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bot-work")
    threads: list[str] = []
    replies: list[dict[str, Any]] = []
    listener = AfterAck(pool, TemplateRenderer()).button(None, spec)  # type: ignore[arg-type]
    listener(ack=lambda: threads.append(threading.current_thread().name), body={"user": {"id": "U1"}},
             respond=lambda **reply: replies.append(reply))
    pool.shutdown(wait=True)
    return threads, replies


def test_the_work_runs_after_the_ack_on_the_pool() -> None:
    seen: list[str] = []

    def handle(services: Any, body: dict[str, Any]) -> Reply:
        seen.append(threading.current_thread().name)
        return Reply("done")

    threads, replies = _click(ButtonSpec("x", handle))
    assert threads == [threading.current_thread().name]
    assert len(seen) == 1 and seen[0].startswith("bot-work")
    assert replies == [{"text": "done", "response_type": "ephemeral", "replace_original": False}]


def test_errors_become_ephemeral_replies() -> None:
    def refused(services: Any, body: dict[str, Any]) -> Reply:
        raise NotPermitted("<@U1> may not confirm risky actions; nothing was changed.", hint="Ask an SRE.")

    def broken(services: Any, body: dict[str, Any]) -> Reply:
        raise RuntimeError("boom")

    _, replies = _click(ButtonSpec("x", refused))
    assert replies[0]["text"] == ":warning: <@U1> may not confirm risky actions; nothing was changed.\nAsk an SRE."
    def store_down(services: Any, body: dict[str, Any]) -> Reply:
        raise RedisConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    _, replies = _click(ButtonSpec("x", store_down))
    assert "state store (Redis) is unavailable" in replies[0]["text"] and "ConnectionError" in replies[0]["text"]
    _, replies = _click(ButtonSpec("x", broken))
    assert replies[0]["text"].startswith(":warning: Something went wrong on the bot's side (reference `")
    assert "boom" not in replies[0]["text"]


def test_an_empty_reply_sends_nothing() -> None:
    _, replies = _click(ButtonSpec("x", lambda services, body: Reply("")))
    assert replies == []


def test_every_button_of_the_app_goes_through_the_wrapper(monkeypatch: pytest.MonkeyPatch, redis_url: str,
                                                          tmp_path: Path) -> None:
    wired: list[str] = []
    original = AfterAck.button

    def spy(self: AfterAck, services: Context, spec: ButtonSpec) -> Any:
        wired.append(spec.action_id)
        return original(self, services, spec)

    monkeypatch.setattr(AfterAck, "button", spy)
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    settings = Settings(slack_bot_token="xoxb-test", slack_signing_secret="secret", stakeholder_channel="C_STAKE",
                        redis_url=redis_url, kubeconfig=kubeconfig)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        create_app(Context.from_settings(settings), work=pool)
    finally:
        pool.shutdown(wait=True)
    assert wired == [spec.action_id for spec in buttons()]
    assert {ACTION_CONFIRM, ACTION_CANCEL, ACTION_PROCEED_ANYWAY, ACTION_RESOLVE, ACTION_POST_UPDATE, ACTION_ASSESS,
            ACTION_ESCALATE, ACTION_ESCALATION_ESCALATE, ACTION_ESCALATION_SNOOZE, ACTION_ESCALATION_DISMISS,
            *STEP_ACTION_IDS, ACTION_UNDO, ACTION_RESTORE_NODE,
            ACTION_TRIAGE_OPEN, ACTION_TRIAGE_ATTACH, ACTION_TRIAGE_DISMISS, ACTION_RECOVERY_CHECKLIST} == set(wired)
