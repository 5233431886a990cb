"""The agent release offline, from the chart (``mode: agent``) and kustomize (``deploy/overlays/agent``): one
Deployment, its ServiceAccount and RBAC, Redis only.

The agent holds no Slack credentials and takes no connection but its metrics port; its egress is DNS,
the central release's Redis and its own apiserver. The same RBAC is used for real by the fleet tests
(``tests/fleet/test_fleet_*_cluster.py``), which mint each agent's ServiceAccount token on its own control plane.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import CHART, DEPLOY, Helm, by_kind, kustomize

pytestmark = pytest.mark.cluster  # helm is built with the test bed

NS = "k8s-incident-bot"
AGENT_VALUES = CHART / "ci" / "agent-values.yaml"


def test_agent_mode_renders_only_the_agent(helm: Helm) -> None:
    objects = helm.template("-f", str(AGENT_VALUES), release="agent")
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "NetworkPolicy", "Role",
                     "RoleBinding", "ServiceAccount"]
    (deployment,) = by_kind(objects, "Deployment").values()
    assert deployment["metadata"]["name"] == "agent-k8s-incident-bot-agent"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["agent", "--cluster", "prod-us"]
    assert not any("secretRef" in source for source in container["envFrom"]), "no Slack Secret in an agent"
    assert {e["name"] for e in container["env"]} == {"REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"}
    (config,) = by_kind(objects, "ConfigMap").values()
    assert config["data"]["CLUSTER_NAME"] == "prod-us" and config["data"]["AGENT_HEARTBEAT_SECONDS"] == "30"
    assert "STAKEHOLDER_CHANNEL" not in config["data"] and config["data"]["KUBE_IN_CLUSTER"] == "true"
    assert set(by_kind(objects, "ClusterRole")) == {"agent-k8s-incident-bot-read", "agent-k8s-incident-bot-actions"}
    (policy,) = by_kind(objects, "NetworkPolicy").values()
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", []))
    assert ports == sorted([53, 53, 26379, 6379, 443, 6443])  # 443 and 6443: the apiserver's ports (EKS: 443)
    only_6443 = helm.template("-f", str(AGENT_VALUES), "--set", "networkPolicy.apiserverPorts={6443}", release="agent")
    (policy,) = by_kind(only_6443, "NetworkPolicy").values()
    assert 443 not in [p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])], \
        "an agent never talks to Slack: 443 only when the apiserver listens there"


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "mode=agent", "--set", "redis.mode=external", "--set", "redis.external.url=redis://r:6379/0"),
     "mode=agent needs agent.cluster"),
    (("--set", "mode=agent", "--set", "agent.cluster=prod-us"), "mode=agent needs the central release's Redis"),
    (("-f", str(AGENT_VALUES), "--set", "slack.existingSecret=k8s-incident-bot"),
     "mode=agent never holds Slack credentials"),
    (("-f", str(AGENT_VALUES), "--set", "agent.cluster=Prod;rm"), "agent/cluster"),
])
def test_bad_agent_values_fail_naming_the_value(helm: Helm, args: tuple[str, ...], message: str) -> None:
    result = helm("template", "agent", str(CHART), "--namespace", NS, *args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_kustomize_agent_overlay_is_the_same_release(helm: Helm, kubectl: Path) -> None:
    """deploy/overlays/agent: the agent Deployment alone (no bot, no Service, no Slack Secret), the chart's RBAC."""
    objects = kustomize(kubectl, DEPLOY / "overlays" / "agent")
    assert not by_kind(objects, "Service") and not by_kind(objects, "Secret")
    (deployment,) = by_kind(objects, "Deployment").values()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["agent", "--cluster", "prod-us"]
    assert container["envFrom"] == [{"configMapRef": {"name": container["envFrom"][0]["configMapRef"]["name"]}}]
    (config,) = by_kind(objects, "ConfigMap").values()
    assert config["data"]["CLUSTER_NAME"] == "prod-us" and "STAKEHOLDER_CHANNEL" not in config["data"]
    chart = helm.template("-f", str(AGENT_VALUES), release="agent")

    def rules(found: list[dict[str, Any]]) -> list[Any]:
        return sorted(json.dumps(r, sort_keys=True) for o in found if o["kind"] in ("ClusterRole", "Role")
                      for r in o.get("rules") or [])

    assert rules(objects) == rules(chart)
