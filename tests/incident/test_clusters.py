"""The cluster registry as data: parsing, every problem listed at once, per-cluster settings and their fallbacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from incident.clusters import (ALL, ClusterRegistry, UnknownCluster, implicit_registry, load_checked, load_registry,
                               parse_registry, valid_name)
from incident.errors import ConfigError
from incident.settings import KubeIdentity, Settings

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: []
users: []
contexts:
- name: prod-eu
  context: {cluster: eu, user: admin}
- name: staging
  context: {cluster: st, user: admin}
"""


@pytest.fixture()
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(KUBECONFIG)
    return path


def registry_text(kubeconfig: Path) -> str:
    return f"""
default: prod-eu
clusters:
  - name: prod-eu
    kubeconfig: {kubeconfig}
    context: prod-eu
    action_allowed_users: [U_EU]
    impersonate: {{U_EU: eu-oncall}}
  - name: prod-us
    mode: agent
    description: reached by its agent only
  - name: staging
    kubeconfig: {kubeconfig.name}
    context: staging
    etcd_endpoints: [http://10.0.0.5:2379]
"""


def test_a_valid_registry(kubeconfig: Path) -> None:
    registry = parse_registry(registry_text(kubeconfig), base_dir=kubeconfig.parent)
    assert registry.names == ("prod-eu", "prod-us", "staging") and registry.default == "prod-eu"
    assert [c.name for c in registry.central()] == ["prod-eu", "staging"]
    assert registry.get("prod-us").is_agent and not registry.implicit
    assert registry.get("staging").kubeconfig == kubeconfig  # relative to the file's directory
    assert not registry.uses_legacy_queues("prod-eu")


def test_settings_for_a_cluster_override_and_fall_back(kubeconfig: Path) -> None:
    registry = parse_registry(registry_text(kubeconfig), base_dir=kubeconfig.parent)
    base = Settings(kubeconfig=kubeconfig, action_allowed_users=["U_GLOBAL"], action_allowed_usergroups=["S_SRE"],
                    kube_impersonate={"U_GLOBAL": "global"})
    eu = registry.settings_for(base, "prod-eu")
    assert (eu.cluster_name, eu.kube_context, eu.kubeconfig) == ("prod-eu", "prod-eu", kubeconfig)
    assert eu.action_allowed_users == ["U_EU"] and eu.action_allowed_usergroups == ["S_SRE"]  # its own, the global
    assert eu.kube_impersonate == {"U_EU": KubeIdentity(user="eu-oncall")}
    staging = registry.settings_for(base, "staging")
    assert staging.action_allowed_users == ["U_GLOBAL"] and staging.kube_impersonate == base.kube_impersonate
    assert staging.etcd_endpoints == ["http://10.0.0.5:2379"] and staging.kube_context == "staging"
    agent = registry.settings_for(base, "prod-us")
    assert agent.cluster_name == "prod-us" and agent.kube_context is None  # the agent's own access applies
    assert base.cluster_name == "default"  # a copy: the process' settings are untouched


def test_every_problem_is_listed_at_once(kubeconfig: Path) -> None:
    text = f"""
default: nowhere
colour: blue
clusters:
  - name: prod-eu
    kubeconfig: {kubeconfig}
    context: prod-eu
  - name: prod-eu
    mode: agent
  - name: "prod;rm -rf /"
  - name: "<@U123>"
  - name: edge
    mode: satellite
  - name: dev
    kubeconfig: {kubeconfig}
    context: missing
  - name: lab
    kubeconfig: /nonexistent/kubeconfig
  - name: all
  - name: remote
    mode: agent
    context: prod-eu
  - name: qa
    action_allowed_users: [alice]
    flavour: vanilla
"""
    with pytest.raises(ConfigError) as caught:
        parse_registry(text, "clusters.yaml")
    problems = "\n".join(caught.value.problems)
    for expected in ("unknown key(s) colour", "duplicate name 'prod-eu' (also cluster #1)",
                     "'prod;rm -rf /' is not a cluster name", "'<@U123>' is not a cluster name",
                     "mode: unknown mode; use one of central, agent", "context 'missing' is not in",
                     "kubeconfig /nonexistent/kubeconfig does not exist", "'all' is not a cluster name",
                     "an agent cluster is reached by its agent only", "'alice' not Slack user IDs",
                     "flavour: Extra inputs are not permitted", "the default cluster 'nowhere' is not in the list"):
        assert expected in problems, expected
    assert len(caught.value.problems) == 12


@pytest.mark.parametrize("text", ["", "clusters: []", "- a\n- b", "clusters: {a: 1}", "clusters: [\n"])
def test_shapeless_files_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_registry(text)


def test_names() -> None:
    assert valid_name("prod-eu-1") and valid_name("a")
    for bad in ("Prod", "-x", "x-", "a_b", "a b", "a;b", "$(id)", "<!channel>", "x" * 41, ALL, ""):
        assert not valid_name(bad), bad


def test_unknown_cluster_lists_the_known_ones(kubeconfig: Path) -> None:
    registry = parse_registry(registry_text(kubeconfig), base_dir=kubeconfig.parent)
    with pytest.raises(UnknownCluster) as caught:
        registry.get("<@U1> prod")
    assert "&lt;@U1&gt;" in caught.value.message and "`prod-eu`, `prod-us`, `staging`" in str(caught.value.hint)


def test_without_a_file_the_registry_is_the_one_cluster(kubeconfig: Path) -> None:
    settings = Settings(kubeconfig=kubeconfig, cluster_name="solo", kube_context="staging")
    registry = load_registry(settings)
    assert registry == implicit_registry(settings)
    assert registry.implicit and registry.names == ("solo",) and registry.uses_legacy_queues("solo")
    assert registry.settings_for(settings, "solo") is settings


def test_load_registry_rereads_a_changed_file(tmp_path: Path, kubeconfig: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(registry_text(kubeconfig))
    settings = Settings(kubeconfig=kubeconfig, clusters_file=path, default_cluster="staging")
    first = load_registry(settings)
    assert isinstance(first, ClusterRegistry) and first.default == "staging"  # DEFAULT_CLUSTER wins over the file
    path.write_text("clusters:\n  - name: only-one\n    kubeconfig: " + str(kubeconfig) + "\n")
    assert load_registry(settings.model_copy(update={"default_cluster": None})).names == ("only-one",)


def test_load_checked_adds_the_registry_problems(tmp_path: Path, kubeconfig: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text("clusters:\n  - name: a\n  - name: a\n")
    with pytest.raises(ConfigError) as caught:
        load_checked("worker", kubeconfig=kubeconfig, clusters_file=path)
    assert any("duplicate name 'a'" in p for p in caught.value.problems)


def test_check_config_lists_the_registry(tmp_path: Path, kubeconfig: Path) -> None:
    good = tmp_path / "clusters.yaml"
    good.write_text(registry_text(kubeconfig))
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig), "CLUSTERS_FILE": str(good), "HOME": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-m", "k8s_incident_bot", "check-config", "--mode", "worker"], env=env,
                        capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "Clusters:    3" in ok.stdout and "prod-us" in ok.stdout and "its agent" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters:\n  - name: x\n  - name: x\n  - name: 'a b'\n    mode: sideways\n")
    env["CLUSTERS_FILE"] = str(bad)
    refused = subprocess.run([sys.executable, "-m", "k8s_incident_bot", "check-config", "--mode", "worker"], env=env,
                             capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert refused.returncode == 2
    assert "duplicate name 'x'" in refused.stderr and "'a b' is not a cluster name" in refused.stderr
    assert "unknown mode" in refused.stderr


def test_the_post_mortem_names_the_incidents_cluster() -> None:
    from datetime import UTC, datetime

    from incident.model import Incident
    from incident.postmortem import build_report
    from incident.templates import TemplateRenderer

    opened = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    incident = Incident(id="20261201-001", title="DNS down", severity="sev1", channel_id="C1", channel_name="inc-dns",
                        opened_by="U1", opened_at=opened, cluster="prod-eu")
    text = TemplateRenderer().render("postmortem.md.j2", report=build_report(incident, [], now=opened))
    assert "| Cluster | prod-eu |" in text
    incident.cluster = None
    assert "| Cluster |" not in TemplateRenderer().render("postmortem.md.j2", report=build_report(incident, [], now=opened))
