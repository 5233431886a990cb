"""The kustomize base and the example overlay render, hold together, and pass the real apiserver's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from incident.settings import Settings
from sandbox.cluster import LocalCluster
from tests.deploy.conftest import DEPLOY, by_kind, run_kubectl

NAMESPACE = "k8s-incident-bot"
SECRET_NAME = "k8s-incident-bot"
SECRET_SETTINGS = {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "PAGERDUTY_ROUTING_KEY",
                   "ALERTMANAGER_TOKEN"}


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def test_base_is_read_only_and_the_overlay_adds_actions_and_redis(base_objects: list[dict[str, Any]],
                                                                   overlay_objects: list[dict[str, Any]]) -> None:
    assert set(by_kind(base_objects, "ClusterRole")) == {"k8s-incident-bot-read"}
    assert set(by_kind(overlay_objects, "ClusterRole")) == {"k8s-incident-bot-read", "k8s-incident-bot-actions"}
    assert not by_kind(base_objects, "StatefulSet")
    assert set(by_kind(overlay_objects, "StatefulSet")) == {f"{NAMESPACE}/redis"}
    for objects in (base_objects, overlay_objects):
        assert set(by_kind(objects, "Deployment")) == {f"{NAMESPACE}/k8s-incident-bot", f"{NAMESPACE}/k8s-incident-bot-worker"}
        assert set(by_kind(objects, "ServiceAccount")) == {f"{NAMESPACE}/k8s-incident-bot"}
        assert f"{NAMESPACE}/k8s-incident-bot" in by_kind(objects, "Service")
        assert not by_kind(objects, "Secret"), "the Secret stays out of the build (secret.template.yaml)"
        roles = by_kind(objects, "Role")
        assert set(roles) == {"kube-system/k8s-incident-bot-read", "kube-node-lease/k8s-incident-bot-read"}
        for kind in ("RoleBinding", "ClusterRoleBinding"):
            for binding in by_kind(objects, kind).values():
                assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "k8s-incident-bot", "namespace": NAMESPACE}]


def test_one_image_runs_bot_and_worker_as_non_root_with_config_and_secret(overlay_objects: list[dict[str, Any]]) -> None:
    deployments = by_kind(overlay_objects, "Deployment")
    configmaps = by_kind(overlay_objects, "ConfigMap")
    bot, worker = deployments[f"{NAMESPACE}/k8s-incident-bot"], deployments[f"{NAMESPACE}/k8s-incident-bot-worker"]
    (bot_container,), (worker_container,) = _containers(bot), _containers(worker)
    assert bot_container["image"] == worker_container["image"] == "registry.example.com/platform/k8s-incident-bot:0.1.0"
    assert bot_container["args"] == ["serve"] and worker_container["args"] == ["worker"]
    for deployment, container in ((bot, bot_container), (worker, worker_container)):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "k8s-incident-bot"
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        refs = container["envFrom"]
        assert refs[1] == {"secretRef": {"name": SECRET_NAME}}
        assert f"{NAMESPACE}/{refs[0]['configMapRef']['name']}" in configmaps
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    assert bot_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert bot_container["readinessProbe"]["httpGet"]["path"].startswith("/readyz")
    service = by_kind(overlay_objects, "Service")[f"{NAMESPACE}/k8s-incident-bot"]
    assert all(bot["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())


def test_config_holds_only_real_non_secret_settings_and_loads(overlay_objects: list[dict[str, Any]], tmp_path: Path) -> None:
    (config,) = [c for name, c in by_kind(overlay_objects, "ConfigMap").items() if name.split("/")[1].startswith("k8s-incident-bot-")
                 and "redis" not in name]
    data = config["data"]
    known = {name.upper() for name in Settings.model_fields}
    assert set(data) <= known, f"unknown settings in the ConfigMap: {sorted(set(data) - known)}"
    assert not SECRET_SETTINGS & set(data)
    assert data["KUBE_IN_CLUSTER"] == "true" and data["REDIS_URL"] == "redis://redis:6379/0"
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in data.items()})  # type: ignore[arg-type]
    assert settings.stakeholder_channel == "C0123ABCD" and settings.cluster_name == "prod-eu-west-1"
    template = yaml.safe_load((DEPLOY / "base" / "secret.template.yaml").read_text())
    assert template["metadata"]["name"] == SECRET_NAME
    assert set(template["stringData"]) <= SECRET_SETTINGS and all(v == "" for v in template["stringData"].values())


def test_network_policies_allow_dns_redis_apiserver_and_https_only(overlay_objects: list[dict[str, Any]]) -> None:
    policies = by_kind(overlay_objects, "NetworkPolicy")
    bot = policies[f"{NAMESPACE}/k8s-incident-bot"]["spec"]
    assert [p["port"] for rule in bot["ingress"] for p in rule["ports"]] == [3000]
    egress_ports = sorted((p["protocol"], p["port"]) for rule in bot["egress"] for p in rule["ports"])
    assert egress_ports == [("TCP", 53), ("TCP", 443), ("TCP", 6379), ("TCP", 6443), ("UDP", 53)]
    dns = next(rule for rule in bot["egress"] if any(p["port"] == 53 for p in rule["ports"]))
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    redis = policies[f"{NAMESPACE}/redis"]["spec"]
    pods = by_kind(overlay_objects, "StatefulSet")[f"{NAMESPACE}/redis"]["spec"]["template"]["metadata"]["labels"]
    assert all(pods.get(k) == v for k, v in redis["podSelector"]["matchLabels"].items())
    sources = [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in redis["ingress"][0]["from"]]
    assert sorted(sources) == ["bot", "worker"]


def test_redis_component_persists_with_aof(overlay_objects: list[dict[str, Any]]) -> None:
    statefulset = by_kind(overlay_objects, "StatefulSet")[f"{NAMESPACE}/redis"]
    config = by_kind(overlay_objects, "ConfigMap")[f"{NAMESPACE}/k8s-incident-bot-redis"]["data"]["redis.conf"]
    assert "appendonly yes" in config.splitlines()
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


# --- against the real apiserver -----------------------------------------------------------------------

@pytest.mark.cluster
@pytest.mark.parametrize("target", ["base", "overlays/example"])
def test_manifests_pass_server_side_dry_run(kubectl: Path, k8s_cluster: LocalCluster, bot_namespace: str, target: str) -> None:
    rendered = run_kubectl(kubectl, "kustomize", str(DEPLOY / target)).stdout
    result = run_kubectl(kubectl, "apply", "--dry-run=server", "-f", "-", stdin=rendered, kubeconfig=k8s_cluster.kubeconfig)
    assert "(server dry run)" in result.stdout
    applied = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(applied) == len([d for d in yaml.safe_load_all(rendered) if d])


@pytest.mark.cluster
def test_secret_template_passes_server_side_dry_run(kubectl: Path, k8s_cluster: LocalCluster, bot_namespace: str) -> None:
    result = run_kubectl(kubectl, "apply", "--dry-run=server", "-f", str(DEPLOY / "base" / "secret.template.yaml"),
                         kubeconfig=k8s_cluster.kubeconfig)
    assert "secret/k8s-incident-bot created (server dry run)" in result.stdout
