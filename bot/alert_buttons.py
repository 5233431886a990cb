"""Listeners of the Alertmanager intake's buttons and modal: triage (Open / Attach… / Dismiss), the recovery prompt.

Each is a :class:`bot.after_ack.ButtonSpec` (listed by :func:`alert_buttons`, registered by
``bot.app.buttons()``), so it is acknowledged first and runs on the post-ack pool like every other
click; the clicks that decide are recorded in the inbox and replayed after a crash (the decisions are
idempotent under the group's lock). *Attach to an open incident…* opens a modal listing the open
incidents (not recorded: its ``trigger_id`` lasts 3 s); its submission, the :data:`ATTACH_KIND` of
request (declared and listened to by ``bot.app.create_app``), links the group. The handlers only read
the click and call :mod:`service.alerts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.after_ack import ButtonSpec, button_value, clicked_by
from chat.alert_blocks import (
    ACTION_RECOVERY_CHECKLIST,
    ACTION_TRIAGE_ATTACH,
    ACTION_TRIAGE_DISMISS,
    ACTION_TRIAGE_OPEN,
    read_attach_modal,
)
from service import alerts
from service.alerts import MessageRef
from service.context import Context
from service.lifecycle import Reply


def _message(body: dict[str, Any]) -> MessageRef | None:
    channel = str((body.get("channel") or {}).get("id") or "")
    ts = str((body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts") or "")
    return MessageRef(channel, ts) if channel and ts else None


def _on_open(services: Context, body: dict[str, Any]) -> Reply:
    return alerts.open_from_triage(services, button_value(services, body, "no_alert_group"), clicked_by(body), _message(body))


def _on_attach(services: Context, body: dict[str, Any]) -> Reply:
    where = _message(body) or MessageRef("", "")
    return alerts.attach_choices(services, button_value(services, body, "no_alert_group"), str(body.get("trigger_id") or ""), where)


def _on_dismiss(services: Context, body: dict[str, Any]) -> Reply:
    return alerts.dismiss(services, button_value(services, body, "no_alert_group"), clicked_by(body), _message(body))


def _on_recovery_checklist(services: Context, body: dict[str, Any]) -> Reply:
    return alerts.run_recovery_checklist(services, button_value(services, body, "no_incident_in_button"), clicked_by(body))


def alert_buttons() -> tuple[ButtonSpec, ...]:
    """The triage message's three buttons and the recovery prompt's."""
    return (ButtonSpec(ACTION_TRIAGE_OPEN, _on_open), ButtonSpec(ACTION_TRIAGE_ATTACH, _on_attach, durable=False),
            ButtonSpec(ACTION_TRIAGE_DISMISS, _on_dismiss), ButtonSpec(ACTION_RECOVERY_CHECKLIST, _on_recovery_checklist))


ATTACH_KIND = "alert_attach_modal"
"""The attach modal's submission as a kind of acknowledged request (recorded in the inbox, replayed after a crash)."""


def attach_submission(body: dict[str, Any], view: dict[str, Any]) -> dict[str, str]:
    """What is recorded of a submitted attach modal: the group, the triage message, the incident, who."""
    where, incident_id = read_attach_modal(view)
    return {**where, "incident": incident_id, "user_id": clicked_by(body)}


def attach_submission_work(services: Context, body: dict[str, Any]) -> Callable[[], str]:
    """Link the group to the chosen incident. A modal has no response_url, so the channel posts and the updated
    triage message are the answer; only a failure reaches the log."""

    def attach() -> str:
        message = MessageRef(str(body["channel"]), str(body["ts"])) if body.get("channel") and body.get("ts") else None
        alerts.attach(services, str(body.get("group") or ""), str(body.get("incident") or ""), str(body["user_id"]),
                      message)
        return ""

    return attach
