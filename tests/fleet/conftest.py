"""A fleet for tests: two more test-bed control planes, each with an agent, plus the session cluster as a central one.

Module-scoped (the machine has two cores): the control planes ``a`` and ``b`` start once per module, get
the healthy baseline and the agent release's RBAC exactly as the Helm chart renders it in agent mode
(``mode=agent``, ``cluster.accessMode=actions``), and a TokenRequest token of that release's
ServiceAccount. Each agent process (``k8s-incident-bot agent --cluster a``) authenticates with that
token only, reaches Redis and its own apiserver only, and has no Slack setting in its environment.
The session cluster (``tests/fixtures/cluster.py``) is the central cluster ``hub``, reached by the
central worker through its kubeconfig.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from incident.settings import Settings
from sandbox.agents import AgentPool
from sandbox.baseline import install_baseline
from sandbox.binaries import ensure_binaries, ensure_helm
from sandbox.cluster import LocalCluster
from sandbox.ports import free_port
from sandbox.slack import SlackEmulator
from tests.deploy.conftest import Helm
from tests.fixtures.slack import BOT_TOKEN, RESPONDER_GROUP, SIGNING_SECRET, STAKEHOLDER_CHANNEL
from tests.fixtures.workers import settings_environment

AGENT_NAMESPACE = "k8s-incident-bot"
AGENT_RELEASE = "agent"
AGENT_SA = "agent-k8s-incident-bot"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
HEARTBEAT_SECONDS = 6
"""The test's heartbeat window: an agent beats every 2 s, and is down 6 s after its last beat."""


@dataclass
class FleetCluster:
    name: str
    plane: LocalCluster
    agent_kubeconfig: Path
    """Authenticates as the agent release's ServiceAccount (a TokenRequest token), nothing else."""

    def admin(self) -> k8s.ApiClient:
        return self.plane.api_client()


def _agent_rbac(helm: Helm, cluster: str) -> list[dict[str, Any]]:
    objects = helm.template("--set", "mode=agent", "--set", f"agent.cluster={cluster}", "--set",
                            "cluster.accessMode=actions", "--set", "redis.mode=external", "--set",
                            "redis.external.url=redis://redis.example:6379/0", release=AGENT_RELEASE,
                            namespace=AGENT_NAMESPACE)
    return [o for o in objects if o["kind"] in RBAC_KINDS]


def _apply(kubectl: Path, plane: LocalCluster, objects: list[dict[str, Any]]) -> None:
    result = subprocess.run([str(kubectl), "--kubeconfig", str(plane.kubeconfig), "apply", "-f", "-"],
                            input=yaml.safe_dump_all(objects), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _token_kubeconfig(plane: LocalCluster, directory: Path) -> Path:
    with plane.api_client() as admin:
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        token = k8s.CoreV1Api(admin).create_namespaced_service_account_token(AGENT_SA, AGENT_NAMESPACE, request).status.token
    assert plane.pki is not None
    document = {
        "apiVersion": "v1", "kind": "Config", "current-context": "agent",
        "clusters": [{"name": "plane", "cluster": {"server": plane.server, "certificate-authority": str(plane.pki.ca.cert)}}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "agent", "context": {"cluster": "plane", "user": "agent"}}],
    }
    path = directory / "agent-kubeconfig"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def fleet_planes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FleetCluster]]:
    """Control planes ``a`` and ``b`` with the baseline, the agent release's RBAC and its token."""
    binaries = ensure_binaries(lambda message: print(f"[fleet] {message}", file=sys.stderr, flush=True))
    helm = Helm(ensure_helm(lambda message: print(f"[helm] {message}", file=sys.stderr, flush=True)),
                tmp_path_factory.mktemp("helm-home"))
    kubectl = binaries / "kubectl"
    started: dict[str, FleetCluster] = {}
    try:
        for name in ("a", "b"):
            plane = LocalCluster(tmp_path_factory.mktemp(f"plane-{name}"), binaries=binaries, node_prefix=f"{name}-node")
            plane.start(nodes=3)
            started[name] = FleetCluster(name, plane, Path())
            with plane.api_client() as api:
                install_baseline(api)
                k8s.CoreV1Api(api).create_namespace({"metadata": {"name": AGENT_NAMESPACE}})
            _apply(kubectl, plane, _agent_rbac(helm, name))
            started[name].agent_kubeconfig = _token_kubeconfig(plane, tmp_path_factory.mktemp(f"agent-{name}"))
        yield started
    finally:
        for cluster in started.values():
            cluster.plane.stop()


@pytest.fixture()
def clusters_file(tmp_path: Path, kubeconfig: Path) -> Path:
    """The registry: ``hub`` (central, the session cluster), ``a`` and ``b`` (agents)."""
    path = tmp_path / "clusters.yaml"
    path.write_text(f"""
default: hub
clusters:
  - name: hub
    kubeconfig: {kubeconfig}
  - name: a
    mode: agent
  - name: b
    mode: agent
    action_allowed_users: [U_CAROL]
""")
    return path


@pytest.fixture()
def bot_settings(slack: SlackEmulator, redis_url: str, kubeconfig: Path, clusters_file: Path) -> Settings:
    """The central bot and worker of the fleet (the emulator's Slack, the session cluster as ``hub``)."""
    return Settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.api_url,
        stakeholder_channel=STAKEHOLDER_CHANNEL, responder_usergroup=RESPONDER_GROUP, redis_url=redis_url,
        kubeconfig=kubeconfig, action_allowed_users=["U_ALICE", "U_BOB"], clusters_file=clusters_file,
        agent_heartbeat_seconds=HEARTBEAT_SECONDS, kube_request_timeout_seconds=10, assessment_budget_seconds=40,
        confirmation_ttl_seconds=20, action_lease_seconds=10, metrics_port=free_port())


class Agents(AgentPool):
    """Agent processes (``k8s-incident-bot agent --cluster X``), each with only Redis and its cluster's token."""

    def __init__(self, redis_url: str, planes: dict[str, FleetCluster], logs: Path) -> None:
        super().__init__(logs)
        self.redis_url, self.planes = redis_url, planes

    def environment(self, name: str) -> dict[str, str]:
        settings = Settings(_env_file=None, redis_url=self.redis_url,  # type: ignore[call-arg]
                            kubeconfig=self.planes[name].agent_kubeconfig, agent_heartbeat_seconds=HEARTBEAT_SECONDS,
                            kube_request_timeout_seconds=10, assessment_budget_seconds=40, action_lease_seconds=10,
                            confirmation_ttl_seconds=20, metrics_port=free_port())
        env = settings_environment(settings)
        assert not any(key.startswith("SLACK_") and key != "SLACK_API_URL" for key in env), "an agent has no Slack token"
        return env

    def start(self, name: str, env: dict[str, str] | None = None, count: int = 2) -> list[subprocess.Popen[bytes]]:
        """``count`` agents of one cluster (as the chart's two replicas: one may run a long drain, the other
        serves that cluster's assessments and dry-runs meanwhile); each gets a metrics port of its own."""
        started = []
        for _ in range(count):
            started += super().start(name, env or self.environment(name))
        return started


@pytest.fixture()
def agents(redis_url: str, fleet_planes: dict[str, FleetCluster], tmp_path: Path) -> Iterator[Agents]:
    pool = Agents(redis_url, fleet_planes, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()
