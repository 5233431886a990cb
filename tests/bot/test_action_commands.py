"""Risky actions end to end: the emulator plays Slack, the production Bolt app answers (over HTTP, and for the
bad-input and confirm-button cases over Socket Mode too), real RQ workers (the production CLI) validate,
dry-run and run the actions against the real local control plane.

Bad input, unauthorized users, expired and repeated confirms change nothing and say why; the
recovery-order guard asks for *Proceed anyway*; a destructive action needs a second person.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

import tests.conftest as _root
from chat.action_blocks import ACTION_CANCEL, ACTION_CONFIRM, ACTION_PROCEED_ANYWAY
from incident.actions import ActionStatus
from persistence.action_store import ActionStore
from incident.model import Incident
from incident.settings import Settings
from sandbox.cluster import LocalCluster
from sandbox.objects import container, deployment, pod_template
from sandbox.slack import SlackEmulator
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.fixtures.slack import (
    BOT_TOKEN, RESPONDER_GROUP, SIGNING_SECRET, STAKEHOLDER_CHANNEL, RunningBot, both_transports,
)

if "tests.fixtures.cluster" not in getattr(_root, "pytest_plugins", []):
    from tests.fixtures.cluster import k8s_api, k8s_cluster, kubeconfig, namespace  # noqa: F401
if "tests.fixtures.workers" not in getattr(_root, "pytest_plugins", []):
    from tests.fixtures.workers import workers  # noqa: F401

ALLOWED_GROUP = "S_SRE"


@pytest.fixture()
def bot_settings(request: pytest.FixtureRequest, slack: SlackEmulator, redis_url: str, tmp_path: Path) -> Settings:
    """The bot under test: Alice and Bob may act (Bob through a user group); cluster tests get the real kubeconfig."""
    ttl = getattr(request, "param", 120)
    slack.add_usergroup(ALLOWED_GROUP, handle="sre", users=["U_BOB"])
    if request.node.get_closest_marker("cluster"):
        kubeconfig = request.getfixturevalue("kubeconfig")
    else:
        kubeconfig = tmp_path / "kubeconfig.yaml"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    return Settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.api_url,
        stakeholder_channel=STAKEHOLDER_CHANNEL, responder_usergroup=RESPONDER_GROUP, redis_url=redis_url,
        kubeconfig=kubeconfig, action_allowed_users=["U_ALICE"], action_allowed_usergroups=[ALLOWED_GROUP],
        cluster_name="local", confirmation_ttl_seconds=ttl, action_lease_seconds=5,
        second_confirmer_for_destructive=True, slack_app_token=slack.app_token,
    )


@pytest.fixture()
def incident(slack: SlackEmulator, bot_server: RunningBot) -> Incident:
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev1 nodes flapping")
    opened = open_incident(slack, bot_server)
    # The bot answers "Opened incident" only after the set-up open_incident waits for; the tests count
    # ephemeral replies from here on, so that answer must be in before they start counting.
    wait_until(lambda: any(f"Opened incident `{opened.id}`" in t for t in ephemeral_texts(slack)))
    return opened


def buttons(message: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in message.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]


def confirmation(slack: SlackEmulator, channel: str, action_id: str, timeout: float = 60) -> dict[str, Any]:
    """The confirmation message of an action (posted by the worker after its dry-run)."""
    def find() -> dict[str, Any] | None:
        return next((m for m in slack.messages(channel) if f"action `{action_id}`" in str(m.get("blocks"))), None)

    wait_until(find, timeout)
    found = find()
    assert found is not None
    return found


def ephemeral_after(slack: SlackEmulator, count: int, timeout: float = 10) -> str:
    wait_until(lambda: len(ephemeral_texts(slack)) > count, timeout)
    return ephemeral_texts(slack)[-1]


@both_transports
def test_bad_input_and_unauthorized_requests_change_nothing(slack: SlackEmulator, bot_server: RunningBot,
                                                            incident: Incident, redis_client: redis.Redis) -> None:
    channel = incident.channel_id
    cases = {
        "cordon node Bad_Node": "not a valid node name",
        "restart deployment coredns": "&lt;namespace&gt;/&lt;name&gt;",
        "restart pod kube-system/x": "deployment, daemonset or statefulset",
        "scale deployment shop/web many": "whole number",
        "drain node n1 --force": "Unknown option",
        "cancel 12": "action id",
        "label node kwok-node-0 -zone=a": "is not a valid label key",
        "label node kwok-node-0 zone=eu 1a": "one label as `key=value`",
        "unlabel node kwok-node-0 zone=a": "only the label key",
    }
    for text, expected in cases.items():
        response = slack.slash_command("U_ALICE", channel, text)
        assert response.status == 200 and expected in response.body, (text, response.body)
    seen = len(ephemeral_texts(slack))
    slack.slash_command("U_CAROL", channel, "cordon node kwok-node-0")
    assert "may not request risky actions" in ephemeral_after(slack, seen)
    seen = len(ephemeral_texts(slack))
    slack.slash_command("U_ALICE", "C_GENERAL", "cordon node kwok-node-0")
    assert "works inside an incident channel" in ephemeral_after(slack, seen)
    seen = len(ephemeral_texts(slack))
    slack.slash_command("U_ALICE", channel, "queue")
    assert "No risky action is running or waiting" in ephemeral_after(slack, seen)
    seen = len(ephemeral_texts(slack))
    slack.slash_command("U_ALICE", channel, "cancel A42")
    assert "No action `A42` exists" in ephemeral_after(slack, seen)
    assert not redis_client.keys("k8sbot:action:*")
    assert not slack.calls_to("chat.update") or all("risky" not in str(c) for c in slack.calls_to("chat.update"))


@pytest.mark.cluster
@both_transports
def test_cordon_from_slack_confirm_by_allowed_person(slack: SlackEmulator, bot_server: RunningBot, workers: Any,
                                                     incident: Incident, k8s_api: k8s.ApiClient,
                                                     k8s_cluster: LocalCluster) -> None:
    (node,) = k8s_cluster.create_nodes(k8s_api, 1)
    core = k8s.CoreV1Api(k8s_api)
    wait_until(lambda: LocalCluster.node_ready(core.read_node(node)), 60)
    workers.start()
    store = ActionStore(bot_server.services.redis, bot_server.services.keys)
    try:
        channel = incident.channel_id
        seen = len(ephemeral_texts(slack))
        slack.slash_command("U_ALICE", channel, f"cordon node {node}")
        assert "Checking `cordon node" in ephemeral_after(slack, seen)
        message = confirmation(slack, channel, "A1")
        assert buttons(message) == [ACTION_CONFIRM, ACTION_CANCEL]
        assert "spec.unschedulable false → true" in str(message["blocks"])

        seen = len(ephemeral_texts(slack))
        slack.click_button("U_CAROL", channel, message["ts"], ACTION_CONFIRM, "A1")
        assert "may not confirm risky actions" in ephemeral_after(slack, seen)
        assert store.get("A1").status == ActionStatus.AWAITING_CONFIRMATION

        seen = len(ephemeral_texts(slack))
        slack.click_button("U_BOB", channel, message["ts"], ACTION_CONFIRM, "A1")  # allowed through the user group
        assert "Confirmed: `cordon node" in ephemeral_after(slack, seen)
        wait_until(lambda: store.get("A1").status == ActionStatus.SUCCEEDED, 60)
        assert core.read_node(node).spec.unschedulable is True
        wait_until(lambda: any("succeeded" in m["text"] and "A1" in m["text"] for m in slack.messages(channel)), 10)
        wait_until(lambda: buttons(slack.message(channel, message["ts"])) == [], 10)
        audit = bot_server.services.store.timeline(incident.id).entries({"action"})
        assert [(e.data["requested_by"], e.data["confirmed_by"], e.data["status"]) for e in audit] == [
            ("U_ALICE", ["U_BOB"], "succeeded")]
    finally:
        core.delete_node(node)


@pytest.mark.cluster
@pytest.mark.parametrize("bot_settings", [2], indirect=True)
def test_expired_confirm_changes_nothing(slack: SlackEmulator, bot_server: RunningBot, workers: Any,
                                         incident: Incident, k8s_api: k8s.ApiClient) -> None:
    workers.start("--no-scheduler")  # no expiry job: the late click itself must be refused
    store = ActionStore(bot_server.services.redis, bot_server.services.keys)
    node = k8s.CoreV1Api(k8s_api).list_node().items[0].metadata.name
    slack.slash_command("U_ALICE", incident.channel_id, f"cordon node {node}")
    message = confirmation(slack, incident.channel_id, "A1")
    # The bot's "Checking" answer is sent after it queued the dry-run, so it may land after the worker's
    # confirmation message: wait for it before counting replies below.
    wait_until(lambda: any("Checking `cordon node" in t for t in ephemeral_texts(slack)))
    wait_until(lambda: store.get("A1").confirm_deadline is not None, 5)
    import time

    time.sleep(max(0.0, store.get("A1").confirm_deadline.timestamp() - time.time()) + 0.3)
    seen = len(ephemeral_texts(slack))
    slack.click_button("U_BOB", incident.channel_id, message["ts"], ACTION_CONFIRM, "A1")
    assert "expired before it was confirmed; nothing was done" in ephemeral_after(slack, seen)
    assert store.get("A1").status == ActionStatus.EXPIRED
    assert not k8s.CoreV1Api(k8s_api).read_node(node).spec.unschedulable
    assert not bot_server.services.redis.llen(bot_server.services.keys.action_queue("local"))


@pytest.mark.cluster
def test_guard_proceed_anyway_and_second_confirmer(slack: SlackEmulator, bot_server: RunningBot, workers: Any,
                                                   incident: Incident, k8s_api: k8s.ApiClient, namespace: str) -> None:
    template = pod_template({"app": "web"}, [container("web", "registry.k8s.io/pause:3.10")])
    k8s.AppsV1Api(k8s_api).create_namespaced_deployment(namespace, deployment("web", namespace, 2, template))
    bot_server.services.store.timeline(incident.id).append("assessment", "bot", {"verdict": {
        "scope": "cluster-wide", "headline": "etcd has lost quorum",
        "patterns": [{"key": "control-plane", "title": "Control plane failure", "layer": "etcd", "root_cause": "etcd",
                      "layers": ["etcd", "apiserver"], "evidence": ["etcd endpoint(s) unhealthy: 1 of 1"]}]}})
    workers.start()
    store = ActionStore(bot_server.services.redis, bot_server.services.keys)
    channel = incident.channel_id
    slack.slash_command("U_ALICE", channel, f"scale deployment {namespace}/web 0")
    message = confirmation(slack, channel, "A1")
    assert buttons(message) == [ACTION_PROCEED_ANYWAY, ACTION_CANCEL]
    assert "Recovery order" in str(message["blocks"]) and "etcd endpoint(s) unhealthy" in str(message["blocks"])
    # The bot's "Checking" answer is sent after it queued the dry-run, so it may land after the worker's
    # confirmation message: wait for it before counting replies below.
    wait_until(lambda: any("Checking `scale deployment" in t for t in ephemeral_texts(slack)))

    seen = len(ephemeral_texts(slack))
    slack.click_button("U_ALICE", channel, message["ts"], ACTION_PROCEED_ANYWAY, "A1")
    assert "1 more person(s) must confirm" in ephemeral_after(slack, seen)
    wait_until(lambda: buttons(slack.message(channel, message["ts"])) == [ACTION_CONFIRM, ACTION_CANCEL], 10)
    seen = len(ephemeral_texts(slack))
    slack.click_button("U_ALICE", channel, message["ts"], ACTION_CONFIRM, "A1")  # the same person again
    assert "You already confirmed action `A1`; nothing changed" in ephemeral_after(slack, seen)
    assert store.get("A1").status == ActionStatus.AWAITING_CONFIRMATION

    seen = len(ephemeral_texts(slack))
    slack.click_button("U_BOB", channel, message["ts"], ACTION_CONFIRM, "A1")
    assert "Confirmed: `scale deployment" in ephemeral_after(slack, seen)
    wait_until(lambda: store.get("A1").status == ActionStatus.SUCCEEDED, 60)
    assert k8s.AppsV1Api(k8s_api).read_namespaced_deployment("web", namespace).spec.replicas == 0
    done = store.get("A1")
    assert done.confirmed_by == ["U_ALICE", "U_BOB"] and done.guard_ack_by == "U_ALICE"
    audit = bot_server.services.store.timeline(incident.id).entries({"action"})
    assert audit[-1].data["guard"] and audit[-1].data["guard_ack_by"] == "U_ALICE"


@pytest.mark.cluster
def test_label_and_unlabel_from_slack(slack: SlackEmulator, bot_server: RunningBot, workers: Any, incident: Incident,
                                      k8s_api: k8s.ApiClient, k8s_cluster: LocalCluster) -> None:
    """The new kinds take the same path as the others: dry-run, Confirm, serialized run, audit."""
    (node,) = k8s_cluster.create_nodes(k8s_api, 1)
    core = k8s.CoreV1Api(k8s_api)
    wait_until(lambda: LocalCluster.node_ready(core.read_node(node)), 60)
    workers.start()
    store = ActionStore(bot_server.services.redis, bot_server.services.keys)
    channel, key = incident.channel_id, "incident.example.com/restored"
    try:
        seen = len(ephemeral_texts(slack))
        slack.slash_command("U_ALICE", channel, f"label node {node} {key}=eu-1a")
        assert f"Checking `label node {node} {key}=eu-1a`" in ephemeral_after(slack, seen)
        message = confirmation(slack, channel, "A1")
        assert buttons(message) == [ACTION_CONFIRM, ACTION_CANCEL]
        assert f"label `{key}`: unset → `eu-1a`" in str(message["blocks"])
        assert key not in (core.read_node(node).metadata.labels or {})
        slack.click_button("U_BOB", channel, message["ts"], ACTION_CONFIRM, "A1")
        wait_until(lambda: store.get("A1").status == ActionStatus.SUCCEEDED, 60)
        assert core.read_node(node).metadata.labels[key] == "eu-1a"

        slack.slash_command("U_ALICE", channel, f"unlabel node {node} {key}")
        message = confirmation(slack, channel, "A2")
        slack.click_button("U_BOB", channel, message["ts"], ACTION_CONFIRM, "A2")
        wait_until(lambda: store.get("A2").status == ActionStatus.SUCCEEDED, 60)
        assert key not in (core.read_node(node).metadata.labels or {})
        audit = bot_server.services.store.timeline(incident.id).entries({"action"})
        assert [(e.data["kind"], e.data["description"], e.data["confirmed_by"]) for e in audit] == [
            ("label", f"label node {node} {key}=eu-1a", ["U_BOB"]), ("unlabel", f"unlabel node {node} {key}", ["U_BOB"])]
    finally:
        core.delete_node(node)
