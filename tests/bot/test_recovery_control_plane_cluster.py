"""Guided recovery when the control plane itself is slow or unreachable (the test bed's apiserver behind the fault
proxy): the plan names the apiserver as a step done by hand and offers no button at all (nothing else should be
changed while the control plane fails), and once it answers again the next assessment's delta says it cleared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

import tests.conftest as _root
from chat.recovery_blocks import STEP_ACTION_PREFIX
from incident.model import Incident
from incident.settings import Settings
from sandbox.cluster import LocalCluster
from sandbox.proxy import FaultProxy
from sandbox.scenarios import ApiserverUnreachable, SlowApiserver
from sandbox.slack import SlackEmulator
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.bot.test_recovery_cluster import Flow, text_of
from tests.fixtures.slack import BOT_TOKEN, RESPONDER_GROUP, SIGNING_SECRET, STAKEHOLDER_CHANNEL, RunningBot

if "tests.fixtures.cluster" not in getattr(_root, "pytest_plugins", []):
    from tests.fixtures.cluster import k8s_api, k8s_cluster, kubeconfig, settled_cluster  # noqa: F401
if "tests.fixtures.workers" not in getattr(_root, "pytest_plugins", []):
    from tests.fixtures.workers import workers  # noqa: F401

pytestmark = pytest.mark.cluster


@pytest.fixture()
def proxy(k8s_cluster: LocalCluster) -> Iterator[FaultProxy]:
    assert k8s_cluster.ports is not None
    with FaultProxy("127.0.0.1", k8s_cluster.ports.apiserver) as running:
        yield running


@pytest.fixture()
def bot_settings(slack: SlackEmulator, redis_url: str, k8s_cluster: LocalCluster, proxy: FaultProxy,
                 tmp_path: Path) -> Settings:
    """The bot and its workers reach the apiserver through the fault proxy."""
    kubeconfig = k8s_cluster.write_kubeconfig(tmp_path / "proxied.kubeconfig", server=proxy.url)
    return Settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.api_url,
        stakeholder_channel=STAKEHOLDER_CHANNEL, responder_usergroup=RESPONDER_GROUP, redis_url=redis_url,
        kubeconfig=kubeconfig, action_allowed_users=["U_ALICE", "U_BOB"], cluster_name="local",
        slack_app_token=slack.app_token, assessment_budget_seconds=60,
    )


@pytest.fixture()
def incident(slack: SlackEmulator, bot_server: RunningBot, workers: Any, settled_cluster: k8s.ApiClient) -> Incident:
    workers.start()
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 apiserver slow")
    opened = open_incident(slack, bot_server)
    wait_until(lambda: any(f"Opened incident `{opened.id}`" in t for t in ephemeral_texts(slack)))
    return opened


def test_a_slow_control_plane_gets_a_by_hand_step_and_no_buttons(slack: SlackEmulator, bot_server: RunningBot,
                                                                 incident: Incident, proxy: FaultProxy) -> None:
    handle = SlowApiserver(proxy, latency=1.5).apply()
    try:
        flow = Flow(slack, bot_server, incident)
        verdict = flow.assess()
        text = text_of(verdict)
        assert "Control-plane failure" in text, text
        assert "_by hand:_ Get kube-apiserver answering /readyz" in text
        assert "the lowest failing layer (*API server*) is fixed by hand" in text
        assert not [b for b in flow.buttons(verdict) if b["action_id"].startswith(STEP_ACTION_PREFIX)]
    finally:
        handle.undo()


def test_an_unreachable_control_plane_gets_a_by_hand_step_no_action_and_the_delta_once_it_is_back(
        slack: SlackEmulator, bot_server: RunningBot, incident: Incident, proxy: FaultProxy) -> None:
    handle = ApiserverUnreachable(proxy, mode="refuse").apply()
    try:
        flow = Flow(slack, bot_server, incident)
        verdict = flow.assess()
        text = text_of(verdict)
        assert "control plane unreachable" in text.lower() and "Control-plane failure" in text, text
        assert "1. :hammer_and_wrench: _by hand:_ Get kube-apiserver answering /readyz" in text, text
        assert "the lowest failing layer (*API server*) is fixed by hand" in text
        assert not [b for b in flow.buttons(verdict) if b["action_id"].startswith(STEP_ACTION_PREFIX)]
    finally:
        handle.undo()
    services = bot_server.services
    assert services.redis.get(services.keys.action_seq()) is None  # nothing was requested, so nothing queued
    after = flow.assess()  # the responder's re-assessment once the apiserver answers again
    text = text_of(after)
    assert "After step 1 the cluster looks healthy" in text and "by hand: Get kube-apiserver answering" in text, text
    assert "cleared: Control-plane failure" in text and "new: nothing" in text, text
