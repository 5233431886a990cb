"""Structured JSON logs: one object per line with the context ids, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from observability.logging_setup import REDACTED, configure_logging, log_context
from incident.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"
BOT_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
APP_TOKEN = "xapp-1-A0123ABCD-1234567890-0a1b2c3d4e5f"


@pytest.fixture()
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    settings = Settings(_env_file=None, slack_signing_secret=SecretStr(SIGNING_SECRET),  # type: ignore[call-arg]
                        slack_bot_token=SecretStr(BOT_TOKEN), slack_app_token=SecretStr(APP_TOKEN), log_level="DEBUG")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    handler = configure_logging(settings, stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        assert root.handlers == handlers


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_are_json_with_time_level_logger_message_and_context_ids(log_stream: io.StringIO) -> None:
    log = logging.getLogger("k8s.test")
    log.info("outside")
    with log_context(incident_id="20261123-001", request_id="req-7"):
        log.warning("inside %s", "the incident", extra={"channel": "C0123"})
        with log_context(request_id="req-8"):
            log.info("nested")
    first, second, third = _lines(log_stream)
    assert set(first) == {"time", "level", "logger", "message"} and first["message"] == "outside"
    assert second == {**second, "level": "WARNING", "logger": "k8s.test", "message": "inside the incident",
                      "incident_id": "20261123-001", "request_id": "req-7", "channel": "C0123"}
    assert third["incident_id"] == "20261123-001" and third["request_id"] == "req-8"
    assert str(first["time"]).endswith("+00:00")


def test_tokens_and_the_signing_secret_are_redacted_everywhere(log_stream: io.StringIO) -> None:
    log = logging.getLogger("k8s.test")
    log.info("token %s secret %s", BOT_TOKEN, SIGNING_SECRET)
    log.info("a stranger's token xoxp-1111-2222-3333-abcdef and refresh xoxe-1-abc and app %s", "xapp-9-Z-1-2")
    log.info("headers", extra={"authorization": f"Bearer {BOT_TOKEN}"})
    try:
        raise RuntimeError(f"Slack said no to {APP_TOKEN} / {SIGNING_SECRET}")
    except RuntimeError:
        log.exception("failed")
    text = log_stream.getvalue()
    for secret in (BOT_TOKEN, SIGNING_SECRET, APP_TOKEN, "xoxp-1111", "xoxe-1-abc", "xapp-9-Z"):
        assert secret not in text
    lines = _lines(log_stream)
    assert lines[0]["message"] == f"token {REDACTED} secret {REDACTED}"
    assert lines[2]["authorization"] == f"Bearer {REDACTED}"
    assert "RuntimeError" in str(lines[3]["exception"]) and REDACTED in str(lines[3]["exception"])


def test_configure_logging_is_idempotent(log_stream: io.StringIO) -> None:
    root = logging.getLogger()
    names = [h.get_name() for h in root.handlers]
    assert names.count("k8s-incident-bot-json") == 1


def test_the_cli_logs_json_without_the_secrets(tmp_path: Path) -> None:
    """A real process with secrets in its environment configures the logs: JSON on stderr, nothing leaks."""
    script = (
        "import logging, sys\n"
        "from incident.settings import load_settings\n"
        "from observability.logging_setup import configure_logging\n"
        "settings = load_settings('worker')\n"
        "configure_logging(settings)\n"
        "logging.getLogger('probe').info('configured with %s', settings.slack_bot_token.get_secret_value())\n"
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert line["message"] == f"configured with {REDACTED}" and line["logger"] == "probe"
    assert BOT_TOKEN not in result.stderr
