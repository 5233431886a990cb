"""Configuration: every problem listed at once, secrets never echoed, exit code 2 from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from incident.errors import ConfigError
from incident.settings import Settings, load_settings

ALL_ENV = (
    "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "STAKEHOLDER_CHANNEL", "KUBECONFIG",
    "KUBE_IN_CLUSTER", "SLACK_API_URL", "RESPONDER_USERS", "HTTP_PORT", "STATUS_CADENCE_SEV1_MINUTES",
    "KUBE_IMPERSONATE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.chdir(tmp_path)  # no .env


def test_empty_environment_lists_every_missing_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings("any")
    text = caught.value.user_text()
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "STAKEHOLDER_CHANNEL", "KUBECONFIG"):
        assert name in text
    assert len(caught.value.problems) == 5


def test_worker_mode_needs_only_cluster_access(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBE_IN_CLUSTER", "true")
    settings = load_settings("worker")
    assert settings.kube_in_cluster


def test_invalid_values_are_reported_with_missing_ones_and_secrets_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "slack.example")
    monkeypatch.setenv("HTTP_PORT", "not-a-port")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "super-secret-value")
    with pytest.raises(ConfigError) as caught:
        load_settings("http")
    text = caught.value.user_text()
    assert "SLACK_API_URL is invalid" in text
    assert "HTTP_PORT is invalid" in text
    assert "SLACK_BOT_TOKEN is not set" in text
    assert "super-secret-value" not in text


def test_comma_lists_cadence_and_api_url_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPONDER_USERS", "U1, U2,,U3")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9999/api")
    monkeypatch.setenv("STATUS_CADENCE_SEV1_MINUTES", "10")
    settings = Settings()
    assert settings.responder_users == ["U1", "U2", "U3"]
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"
    assert settings.status_cadence_minutes("sev1") == 10
    assert settings.status_cadence_minutes("sev3") == 60
    assert "SecretStr" in repr(Settings(slack_bot_token="xoxb-secret")) or "xoxb-secret" not in repr(
        Settings(slack_bot_token="xoxb-secret")
    )


def test_kubeconfig_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError) as caught:
        load_settings("worker")
    assert "missing.yaml does not exist" in caught.value.user_text()


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN=xoxb-1\nSLACK_SIGNING_SECRET=s\nSTAKEHOLDER_CHANNEL=C1\nKUBECONFIG={kubeconfig}\n"
    )
    settings = load_settings("http")
    assert settings.secret("slack_bot_token") == "xoxb-1"


def test_cli_check_config_exits_2_without_traceback(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "k8s_incident_bot", "check-config"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "SLACK_BOT_TOKEN is not set" in result.stderr
    assert "KUBECONFIG" in result.stderr


def test_cli_check_config_ok(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s", "STAKEHOLDER_CHANNEL": "C1", "KUBECONFIG": str(kubeconfig),
    }
    result = subprocess.run(
        [sys.executable, "-m", "k8s_incident_bot", "check-config", "--mode", "http"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Configuration OK" in result.stdout
    assert "xoxb-1" not in result.stdout


def test_impersonation_map_takes_a_name_or_a_user_with_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBE_IN_CLUSTER", "true")
    monkeypatch.setenv("KUBE_IMPERSONATE", '{"U1": "alice@example.com", "U2": {"user": "bob", "groups": ["sre", "oncall"]}}')
    identities = load_settings("worker").kube_impersonate
    assert identities["U1"].user == "alice@example.com" and identities["U1"].groups == ()
    assert str(identities["U2"]) == "bob (groups: sre, oncall)"


@pytest.mark.parametrize(("value", "message"), [
    ("not json", "KUBE_IMPERSONATE is invalid (not valid JSON: Expecting value"),
    ('{"U1": ""}', "KUBE_IMPERSONATE is invalid"),
    ('{"U1": {"groups": ["sre"]}}', "KUBE_IMPERSONATE is invalid"),
])
def test_a_bad_impersonation_map_is_one_clear_problem(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv("KUBE_IN_CLUSTER", "true")
    monkeypatch.setenv("KUBE_IMPERSONATE", value)
    with pytest.raises(ConfigError) as caught:
        load_settings("worker")
    text = caught.value.user_text()
    assert message in text and '"U0123ABCD": "alice@example.com"' in text  # the problem and the expected shape
    monkeypatch.delenv("KUBE_IN_CLUSTER")
    with pytest.raises(ConfigError) as caught:
        load_settings("worker")
    assert message in caught.value.user_text() and "KUBECONFIG" in caught.value.user_text()  # with the others
