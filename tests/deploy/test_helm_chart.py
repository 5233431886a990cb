"""The Helm chart offline: ``helm lint``, ``helm template`` of each documented values combination, bad
values refused with a message naming the value, and the same RBAC as the kustomize components, mode by mode.

The cluster half (server-side dry-run, RBAC as the chart's ServiceAccount, install/upgrade/uninstall)
is ``test_helm_cluster.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, CHART_CI_VALUES, DEPLOY, Helm, by_kind, kustomize

# No apiserver here, but helm and kubectl (for kustomize) are built from source with the test bed, which
# `make test-fast` promises not to do: these run with the cluster tier.
pytestmark = pytest.mark.cluster

NS = "k8s-incident-bot"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
EXISTING = ("--set", "slack.existingSecret=k8s-incident-bot", "--set", "slack.stakeholderChannel=C0123ABCD")


def _values(name: str) -> Path:
    path = CHART / "ci" / f"{name}-values.yaml"
    assert path in CHART_CI_VALUES
    return path


@pytest.mark.parametrize("values", CHART_CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_is_clean_for_each_documented_combination(helm: Helm, values: Path) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in result.stdout, result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_every_ci_values_file_is_documented() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for values in CHART_CI_VALUES:
        assert f"ci/{values.name}" in readme, f"deploy/README.md does not mention ci/{values.name}"


def _containers(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return by_kind(objects, "Deployment")[f"{NS}/{name}"]["spec"]["template"]["spec"]["containers"]


def test_read_only_http_renders_the_bot_workers_redis_and_read_rbac(helm: Helm) -> None:
    objects = helm.template("-f", str(_values("read-only-http")))
    (bot,), (worker,) = _containers(objects, "bot-k8s-incident-bot"), _containers(objects, "bot-k8s-incident-bot-worker")
    assert bot["args"] == ["serve"] and worker["args"] == ["worker"]
    assert bot["image"] == worker["image"] == "k8s-incident-bot:0.1.0"
    assert {"secretRef": {"name": "k8s-incident-bot"}} in bot["envFrom"]
    assert not by_kind(objects, "Secret"), "an existing Secret is used, none is created"
    assert set(by_kind(objects, "ClusterRole")) == {"bot-k8s-incident-bot-read"}
    assert f"{NS}/bot-k8s-incident-bot" in by_kind(objects, "Service")
    (redis,) = by_kind(objects, "StatefulSet").values()
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert redis["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    config = by_kind(objects, "ConfigMap")[f"{NS}/bot-k8s-incident-bot"]["data"]
    assert config["REDIS_URL"] == "redis://bot-k8s-incident-bot-redis:6379/0"
    assert config["RESPONDER_USERGROUP"] == "S0123ABCD" and config["KUBE_IN_CLUSTER"] == "true"
    assert set(by_kind(objects, "PodDisruptionBudget")) == {f"{NS}/bot-k8s-incident-bot", f"{NS}/bot-k8s-incident-bot-worker"}
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"].get("namespace") in (NS, "kube-system", "kube-node-lease"), obj["metadata"]


def test_actions_socket_renders_socket_mode_a_created_secret_and_external_redis(helm: Helm) -> None:
    objects = helm.template("-f", str(_values("actions-socket")))
    (bot,) = _containers(objects, "bot-k8s-incident-bot")
    assert bot["args"] == ["socket"]
    assert f"{NS}/bot-k8s-incident-bot" not in by_kind(objects, "Service"), "Socket Mode needs no Service"
    secret = by_kind(objects, "Secret")[f"{NS}/bot-k8s-incident-bot"]
    assert set(secret["stringData"]) == {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "PAGERDUTY_ROUTING_KEY"}
    assert not by_kind(objects, "StatefulSet")
    config = by_kind(objects, "ConfigMap")[f"{NS}/bot-k8s-incident-bot"]["data"]
    assert config["REDIS_URL"] == "rediss://redis.example.internal:6380/0" and config["CLUSTER_NAME"] == "prod-eu-west-1"
    assert set(by_kind(objects, "ClusterRole")) == {"bot-k8s-incident-bot-read", "bot-k8s-incident-bot-actions"}
    deployments = by_kind(objects, "Deployment")
    assert deployments[f"{NS}/bot-k8s-incident-bot"]["spec"]["replicas"] == 1
    assert deployments[f"{NS}/bot-k8s-incident-bot-worker"]["spec"]["replicas"] == 3
    assert set(by_kind(objects, "PodDisruptionBudget")) == {f"{NS}/bot-k8s-incident-bot-worker"}, "no PDB for one bot"
    policy = by_kind(objects, "NetworkPolicy")[f"{NS}/bot-k8s-incident-bot-worker"]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
    assert 6380 in ports and 6379 not in ports


def test_the_alertmanager_intake_gets_its_token_settings_and_a_service_even_in_socket_mode(
        helm: Helm, tmp_path: Path) -> None:
    rules = "actions:\n  - {match: {severity: critical}, action: open}\n"
    values = tmp_path / "alertmanager-values.yaml"
    values.write_text(yaml.safe_dump({"alertmanager": {"enabled": True, "token": "am-token",
                                                       "triageChannel": "C0ALERTS", "rules": rules}}))
    objects = helm.template("-f", str(_values("actions-socket")), "-f", str(values))
    assert f"{NS}/bot-k8s-incident-bot" in by_kind(objects, "Service"), "Alertmanager needs the Service"
    secret = by_kind(objects, "Secret")[f"{NS}/bot-k8s-incident-bot"]
    assert secret["stringData"]["ALERTMANAGER_TOKEN"] == "am-token"
    config = by_kind(objects, "ConfigMap")[f"{NS}/bot-k8s-incident-bot"]["data"]
    assert config["ALERT_TRIAGE_CHANNEL"] == "C0ALERTS" and config["ALERT_RULES"] == rules
    assert "ALERTMANAGER_TOKEN" not in config


def test_impersonation_grants_exactly_the_mapped_identities(helm: Helm) -> None:
    objects = helm.template("-f", str(_values("impersonation")))
    roles = by_kind(objects, "ClusterRole")
    assert set(roles) == {"bot-k8s-incident-bot-read", "bot-k8s-incident-bot-impersonate"}
    rules = roles["bot-k8s-incident-bot-impersonate"]["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
         "resourceNames": ["alice@example.com", "bob@example.com", "carol@example.com"]},
        {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"], "resourceNames": ["sre-oncall"]},
    ]
    config = by_kind(objects, "ConfigMap")[f"{NS}/bot-k8s-incident-bot"]["data"]
    assert json.loads(config["KUBE_IMPERSONATE"])["U0CAROL"] == {"user": "carol@example.com", "groups": ["sre-oncall"]}
    assert "REDIS_URL" not in config
    (bot,) = _containers(objects, "bot-k8s-incident-bot")
    assert {"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "k8s-incident-bot-redis", "key": "REDIS_URL"}}} in bot["env"]
    assert {"name": "ETCD_ENDPOINTS", "value": "https://10.0.0.5:2379"} in bot["env"]
    assert by_kind(objects, "ServiceMonitor")[f"{NS}/bot-k8s-incident-bot"]["metadata"]["labels"]["release"] == "prometheus"
    assert set(by_kind(objects, "PodDisruptionBudget")) == {f"{NS}/bot-k8s-incident-bot-worker"}


def test_sentinel_gives_the_bot_the_sentinels_the_master_and_the_passwords(helm: Helm) -> None:
    objects = helm.template("-f", str(_values("sentinel")))
    config = by_kind(objects, "ConfigMap")[f"{NS}/bot-k8s-incident-bot"]["data"]
    assert config["REDIS_SENTINELS"].split(",") == [f"redis-sentinel-{i}.redis:26379" for i in range(3)]
    assert config["REDIS_SENTINEL_MASTER"] == "incidents" and "REDIS_URL" not in config
    assert not by_kind(objects, "StatefulSet")
    (worker,) = _containers(objects, "bot-k8s-incident-bot-worker")
    passwords = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in worker["env"]}
    assert passwords == {key: {"name": "k8s-incident-bot-redis", "key": key, "optional": True}
                         for key in ("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD")}
    policy = by_kind(objects, "NetworkPolicy")[f"{NS}/bot-k8s-incident-bot-worker"]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
    assert {26379, 6379} <= ports


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "cluster.accessMode=admin", *EXISTING), "at '/cluster/accessMode': value must be one of 'read-only', 'actions', 'impersonation'"),
    (("--set", "slack.stakeholderChannel=C0123ABCD"), "slack.botToken is empty"),
    (("--set", "slack.botToken=xoxb-1", "--set", "slack.stakeholderChannel=C0123ABCD"), "slack.signingSecret is empty"),
    (("--set", "slack.existingSecret=s"), "slack.stakeholderChannel is required"),
    (("--set", "slack.mode=socket", "--set", "slack.botToken=xoxb-1", "--set", "slack.signingSecret=x", "--set",
      "slack.stakeholderChannel=C1"), "slack.mode=socket needs slack.appToken"),
    (("--set", "slack.mode=websocket", *EXISTING), "at '/slack/mode'"),
    (("--set", "cluster.accessMode=impersonation", *EXISTING), "cluster.accessMode=impersonation needs cluster.impersonate"),
    (("--set", "redis.mode=cluster", *EXISTING), "at '/redis/mode': value must be one of 'bundled', 'external', 'sentinel'"),
    (("--set", "redis.mode=sentinel", *EXISTING), "redis.mode=sentinel needs redis.sentinel.addresses"),
    (("--set", "redis.mode=sentinel", "--set", "redis.sentinel.addresses={sentinel-0}", *EXISTING),
     "at '/redis/sentinel/addresses/0'"),
    (("--set", "redis.mode=external", *EXISTING), "redis.mode=external needs redis.external.url"),
    (("--set", "redis.external.url=http://x", *EXISTING), "at '/redis/external/url'"),
    (("--set", "slack.botToken=xoxp-user-token", "--set", "slack.signingSecret=x", "--set", "slack.stakeholderChannel=C1"),
     "at '/slack/botToken'"),
    (("--set", "config.SLACK_BOT_TOKEN=xoxb-1", *EXISTING), "at '/config'"),
    (("--set", "config.ALERTMANAGER_TOKEN=t", *EXISTING), "at '/config'"),
    (("--set", "alertmanager.triageChannel=#alerts", *EXISTING), "at '/alertmanager/triageChannel'"),
    (("--set", "bot.replicas=-1", *EXISTING), "at '/bot/replicas'"),
    (("--set", "botReplicas=3", *EXISTING), "additional properties 'botReplicas' not allowed"),
    (("--set", "cluster.impersonate.U1=*", "--set", "cluster.accessMode=impersonation", *EXISTING), "at '/cluster/impersonate/U1'"),
])
def test_bad_values_fail_with_a_message_naming_the_value(helm: Helm, args: tuple[str, ...], message: str) -> None:
    result = helm("template", "bot", str(CHART), *args, check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert message in result.stderr, result.stderr


# -- kustomize and the chart grant the same RBAC -----------------------------------------------------------

MAPPING_LIKE_THE_COMPONENT = ("--set", "cluster.accessMode=impersonation",
                              "--set", "cluster.impersonate.U1=alice@example.com",
                              "--set", "cluster.impersonate.U2.user=bob@example.com",
                              "--set", "cluster.impersonate.U2.groups[0]=sre-oncall")
"""Maps Slack users to exactly the example identities deploy/components/impersonation lists."""


def _grants(objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """What the bot's ServiceAccount may do, independent of object names: one (scope, binding kind, rule)
    per rule reachable through a binding to the ServiceAccount."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects
             if o["kind"] in ("ClusterRole", "Role")}
    grants = set()
    for binding in objects:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        subjects = binding["subjects"]
        assert [(s["kind"], s["name"]) for s in subjects] in ([("ServiceAccount", "k8s-incident-bot")],
                                                              [("ServiceAccount", "bot-k8s-incident-bot")]), subjects
        assert all(s["namespace"] == NS for s in subjects), subjects
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            normal = {k: sorted(v) for k, v in rule.items()}
            grants.add((namespace or "cluster-wide", binding["kind"], json.dumps(normal, sort_keys=True)))
    return grants


def _kustomize_mode(kubectl: Path, tmp_path: Path, components: list[str]) -> list[dict[str, Any]]:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes only relative paths to other kustomizations.
        "resources": [os.path.relpath(DEPLOY / "base", overlay)],
        "components": [os.path.relpath(DEPLOY / "components" / c, overlay) for c in components],
        "transformers": [yaml.safe_dump({"apiVersion": "builtin", "kind": "NamespaceTransformer",
                                         "metadata": {"name": "namespace", "namespace": NS}, "unsetOnly": True,
                                         "setRoleBindingSubjects": "allServiceAccounts"})],
    }))
    return [o for o in kustomize(kubectl, overlay) if o["kind"] in RBAC_KINDS]


@pytest.mark.parametrize(("mode", "components", "chart_args"), [
    ("read-only", [], ()),
    ("actions", ["actions"], ("--set", "cluster.accessMode=actions")),
    ("impersonation", ["impersonation"], MAPPING_LIKE_THE_COMPONENT),
])
def test_chart_and_kustomize_grant_exactly_the_same_rbac(helm: Helm, kubectl: Path, tmp_path: Path, mode: str,
                                                         components: list[str], chart_args: tuple[str, ...]) -> None:
    from_kustomize = _grants(_kustomize_mode(kubectl, tmp_path, components))
    from_chart = _grants([o for o in helm.template(*EXISTING, *chart_args) if o["kind"] in RBAC_KINDS])
    assert from_chart == from_kustomize, (
        f"{mode}: only in the chart {sorted(from_chart - from_kustomize)}; only in kustomize {sorted(from_kustomize - from_chart)}")
    assert from_chart, mode
