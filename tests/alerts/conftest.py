"""The alert-intake tests' bot: the Alertmanager endpoint on (its token), a triage channel, the default rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from incident.settings import Settings
from sandbox.slack import SlackEmulator
from tests.fixtures.alertmanager import ALERTMANAGER_TOKEN, TRIAGE_CHANNEL
from tests.fixtures.slack import BOT_TOKEN, RESPONDER_GROUP, SIGNING_SECRET, STAKEHOLDER_CHANNEL


@pytest.fixture()
def fake_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose apiserver refuses connections: the resolve path's validation runs and fails at once."""
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"
        "clusters: [{name: nowhere, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]\n"
        "users: [{name: nobody, user: {token: none}}]\n")
    return path


@pytest.fixture()
def bot_settings(slack: SlackEmulator, redis_url: str, fake_kubeconfig: Path) -> Settings:
    slack.add_channel(TRIAGE_CHANNEL, name="alerts-triage", members=[slack.bot_user_id, "U_ALICE", "U_BOB"])
    return Settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.api_url,
        stakeholder_channel=STAKEHOLDER_CHANNEL, responder_usergroup=RESPONDER_GROUP, redis_url=redis_url,
        kubeconfig=fake_kubeconfig, action_allowed_users=["U_ALICE", "U_BOB"], slack_app_token=slack.app_token,
        alertmanager_token=ALERTMANAGER_TOKEN, alert_triage_channel=TRIAGE_CHANNEL,
    )
