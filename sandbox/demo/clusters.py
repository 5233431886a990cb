"""The demo's clusters: one test-bed control plane per cluster the bot serves, and the registry that names them.

Why: "one bot, many clusters" (issue #19) is only visible in the demo when the demo has more than one
cluster, reached both ways the bot knows. By default (``DEMO_CLUSTERS=2``) the demo runs

- ``prod-eu``, **central**: the bot's own worker reaches its apiserver through a kubeconfig;
- ``prod-us``, **agent**: ``k8s-incident-bot agent --cluster prod-us`` runs beside it with its own
  ServiceAccount token (the RBAC of ``deploy/overlays/agent``, applied with ``kubectl kustomize``), connects
  to Redis and its own apiserver only and holds no Slack token; what it has to say goes through the outbox.

Each has its own node names (``eu-node-N``, ``us-node-N``), its own fault proxy (so "control plane slow"
slows one cluster only), its own scenario panel and a channel bound to it (``#prod-eu``, ``#prod-us``);
``#fleet`` is bound to none, for the fleet view (``/k8s clusters``, ``/k8s assess --cluster all``).
``DEMO_CLUSTERS=1`` is the single-cluster demo as it always was: one cluster ``sandbox``, no
``CLUSTERS_FILE`` (the bot's implicit registry of one), no agent.

:class:`DemoCluster` is what :class:`sandbox.demo.stack.DemoStack` starts per cluster;
:func:`registry_yaml` writes the ``CLUSTERS_FILE`` the bot, the worker and the agent read.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from incident.clusters import ClusterMode
from sandbox.baseline import install_baseline
from sandbox.cluster import LocalCluster
from sandbox.proxy import FaultProxy

COUNT_VARIABLE = "DEMO_CLUSTERS"
"""``make demo`` / ``k8s-incident-bot demo`` read how many clusters to run from here (default :data:`DEFAULT_COUNT`)."""
DEFAULT_COUNT = 2
REPO = Path(__file__).resolve().parents[2]
AGENT_OVERLAY = REPO / "deploy" / "overlays" / "agent"
AGENT_NAMESPACE = "k8s-incident-bot"
AGENT_SERVICE_ACCOUNT = "k8s-incident-bot"
AGENT_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
"""What the demo takes of the agent overlay: its identity and RBAC (the agent itself runs as a local process)."""
AGENT_TOKEN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ClusterPlan:
    """One cluster of the demo: its name in the registry, how the bot reaches it, its nodes and its channel."""

    name: str
    mode: ClusterMode
    node_prefix: str
    description: str
    channel_id: str | None = None
    """The channel bound to this cluster (``None``: no channel of its own)."""
    channel_name: str | None = None


SINGLE: tuple[ClusterPlan, ...] = (
    ClusterPlan("sandbox", "central", "kwok-node", "the demo's only cluster, reached through a kubeconfig"),
)
FLEET: tuple[ClusterPlan, ...] = (
    ClusterPlan("prod-eu", "central", "eu-node", "central: the bot's worker reaches its apiserver through a kubeconfig",
                "C_PROD_EU", "prod-eu"),
    ClusterPlan("prod-us", "agent", "us-node",
                "agent: k8s-incident-bot agent --cluster prod-us runs beside it, outbound to Redis only, no Slack token",
                "C_PROD_US", "prod-us"),
)
PLANS: dict[int, tuple[ClusterPlan, ...]] = {1: SINGLE, 2: FLEET}
FLEET_CHANNEL = ("C_FLEET", "fleet")
"""With several clusters: a channel bound to none, where ``/k8s clusters`` and ``/k8s assess --cluster all`` run."""


def plans_for(count: int) -> tuple[ClusterPlan, ...]:
    """The demo's clusters for ``DEMO_CLUSTERS=count``; :class:`ValueError` for a count the demo does not offer."""
    if count not in PLANS:
        raise ValueError(f"the demo runs {' or '.join(map(str, sorted(PLANS)))} cluster(s), not {count!r}")
    return PLANS[count]


def count_from_environment() -> int:
    """``$DEMO_CLUSTERS`` as a count (default :data:`DEFAULT_COUNT`); :class:`ValueError` says what is allowed."""
    raw = os.environ.get(COUNT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_COUNT
    try:
        count = int(raw)
    except ValueError:
        count = -1
    if count not in PLANS:
        raise ValueError(f"{COUNT_VARIABLE} must be {' or '.join(map(str, sorted(PLANS)))} (got {raw!r})")
    return count


@dataclass
class DemoCluster:
    """One started cluster of the demo: its control plane, the fault proxy in front, how the bot's side reaches it."""

    plan: ClusterPlan
    plane: LocalCluster
    workdir: Path
    proxy: FaultProxy | None = None
    kubeconfig: Path | None = None
    """Through the proxy: the admin's for a central cluster, the agent's ServiceAccount token for an agent one."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def is_agent(self) -> bool:
        return self.plan.mode == "agent"

    def install(self, kubectl: Path) -> None:
        """After :meth:`LocalCluster.start`: the healthy baseline, the proxy, and the kubeconfig the bot side uses."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        api = self.plane.api_client()
        try:
            install_baseline(api)
        finally:
            api.close()
        self.proxy = FaultProxy("127.0.0.1", int(self.plane.server.rsplit(":", 1)[1])).start()
        path = self.workdir / "kubeconfig-via-proxy.yaml"
        self.kubeconfig = (self._agent_kubeconfig(kubectl, path) if self.is_agent
                           else self.plane.write_kubeconfig(path, server=self.proxy.url))

    def _agent_kubeconfig(self, kubectl: Path, path: Path) -> Path:
        """Apply the agent overlay's ServiceAccount and RBAC, and write a kubeconfig with that account's token."""
        rendered = subprocess.run([str(kubectl), "kustomize", str(AGENT_OVERLAY)], capture_output=True, text=True,
                                  timeout=60, check=False)
        if rendered.returncode != 0:
            raise RuntimeError(f"kubectl kustomize {AGENT_OVERLAY} failed:\n{rendered.stderr}")
        objects = [o for o in yaml.safe_load_all(rendered.stdout) if o and o.get("kind") in AGENT_KINDS]
        applied = subprocess.run([str(kubectl), "--kubeconfig", str(self.plane.kubeconfig), "apply", "-f", "-"],
                                 input=yaml.safe_dump_all(objects), capture_output=True, text=True, timeout=120,
                                 check=False)
        if applied.returncode != 0:
            raise RuntimeError(f"applying the agent's RBAC to {self.name} failed:\n{applied.stderr}")
        assert self.proxy is not None and self.plane.pki is not None
        api = self.plane.api_client()
        try:
            request = k8s.AuthenticationV1TokenRequest(
                spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=AGENT_TOKEN_SECONDS))
            token = k8s.CoreV1Api(api).create_namespaced_service_account_token(
                AGENT_SERVICE_ACCOUNT, AGENT_NAMESPACE, request).status.token
        finally:
            api.close()
        document: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Config", "current-context": self.name,
            "clusters": [{"name": self.name, "cluster": {"server": self.proxy.url,
                                                         "certificate-authority": str(self.plane.pki.ca.cert)}}],
            "users": [{"name": f"{self.name}-agent", "user": {"token": token}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": f"{self.name}-agent"}}],
        }
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        """Stop the proxy and the control plane; safe to call twice."""
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        self.plane.stop()


def registry_yaml(clusters: list[DemoCluster]) -> str:
    """The ``CLUSTERS_FILE`` of the demo: the first cluster is the default; agents name no kubeconfig."""
    entries: list[dict[str, Any]] = []
    for cluster in clusters:
        entry: dict[str, Any] = {"name": cluster.name, "mode": cluster.plan.mode, "description": cluster.plan.description}
        if not cluster.is_agent:
            entry["kubeconfig"] = str(cluster.kubeconfig)
        entries.append(entry)
    return yaml.safe_dump({"default": clusters[0].name, "clusters": entries}, sort_keys=False)
