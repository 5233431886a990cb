"""RQ entry point of one Alertmanager notification; the logic is :mod:`service.alerts`."""

from __future__ import annotations

from typing import Any

from service.alerts import process_notification as process
from service.context import Context


def process_notification(payload: dict[str, Any]) -> dict[str, Any]:
    """Open, triage, join or record the notification's alert group (idempotent per alert fingerprint)."""
    return process(Context.load(), payload)
