"""Structured JSON logs for the bot and its workers, with secrets redacted before anything is written.

:func:`configure_logging` replaces ``logging.basicConfig`` in ``serve``, ``socket`` and ``worker``: one JSON
object per line on stderr with ``time``, ``level``, ``logger``, ``message``, and ``incident_id`` /
``request_id`` when the code handling the log record has set them (:func:`log_context`). A filter on
the handler redacts anything shaped like a Slack token (``xoxb-…``, ``xoxp-…``, ``xoxa-…``, ``xoxr-…``,
``xapp-…``) and the exact values of the configured secrets (signing secret, tokens, PagerDuty key), in
the message, its arguments and tracebacks alike.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from incident.settings import Settings

incident_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("incident_id", default=None)
"""The incident the current code works on (set by listeners and jobs)."""
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
"""An id of the Slack request or RQ job being handled."""

REDACTED = "[REDACTED]"
SLACK_TOKEN_PATTERN = re.compile(r"\b(?:xox[abpres]|xapp)-[A-Za-z0-9][A-Za-z0-9-]*")
"""Bot/user/app-level/refresh/config tokens: ``xoxb-``, ``xoxp-``, ``xoxa-``, ``xoxr-``, ``xoxe-``, ``xapp-``."""
SECRET_FIELDS = ("slack_bot_token", "slack_signing_secret", "slack_app_token", "pagerduty_routing_key")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


@contextmanager
def log_context(*, incident_id: str | None = None, request_id: str | None = None) -> Iterator[None]:
    """Within the block, every log record carries these ids (``None`` leaves the current value)."""
    tokens = []
    if incident_id is not None:
        tokens.append((incident_id_var, incident_id_var.set(incident_id)))
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class RedactingFilter(logging.Filter):
    """Rewrites a record so no Slack token or configured secret reaches any output."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return SLACK_TOKEN_PATTERN.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        record.exc_info = None if record.exc_text else record.exc_info
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, ids from the context, extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        incident_id = getattr(record, "incident_id", None) or incident_id_var.get()
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if incident_id:
            entry["incident_id"] = incident_id
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configured_secrets(settings: Settings) -> list[str]:
    """The plain values of every secret setting that is set."""
    values = []
    for name in SECRET_FIELDS:
        value = getattr(settings, name, None)
        if value is not None:
            values.append(value.get_secret_value())
    return values


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Make the root logger write redacted JSON lines at ``settings.log_level``; returns the handler.

    Replaces handlers a previous call installed (idempotent), leaves other handlers alone.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("k8s-incident-bot-json")
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(configured_secrets(settings)))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == handler.get_name():
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    return handler
