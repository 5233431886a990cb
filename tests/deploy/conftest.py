"""Fixtures of the deployment tests: kubectl and helm (built from source with the test bed), rendered manifests.

The real-cluster fixtures (``k8s_cluster``, ``k8s_api``, …) come from ``tests.fixtures.cluster``; it is
registered here unless the root conftest already loads it, so a session has one cluster either way.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CLUSTER_PLUGIN = "tests.fixtures.cluster"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(CLUSTER_PLUGIN):
        config.pluginmanager.import_plugin(CLUSTER_PLUGIN)


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """The kubectl of the test bed (its kustomize renders the manifests)."""
    from sandbox.binaries import ensure_binaries

    binaries = ensure_binaries(lambda message: print(f"[kubectl] {message}", file=sys.stderr, flush=True))
    return binaries / "kubectl"


def run_kubectl(kubectl: Path, *args: str, kubeconfig: Path | None = None, stdin: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(kubectl), *args] + ([f"--kubeconfig={kubeconfig}"] if kubeconfig else [])
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n{result.stdout}")
    return result


def kustomize(kubectl: Path, path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize <path>`` → the rendered objects."""
    output = run_kubectl(kubectl, "kustomize", str(path)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


@pytest.fixture(scope="session")
def base_objects(kubectl: Path) -> list[dict[str, Any]]:
    return kustomize(kubectl, DEPLOY / "base")


@pytest.fixture(scope="session")
def overlay_objects(kubectl: Path) -> list[dict[str, Any]]:
    return kustomize(kubectl, DEPLOY / "overlays" / "example")


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind by ``namespace/name`` (``name`` for cluster-scoped ones)."""
    found = {}
    for obj in objects:
        if obj["kind"] == kind:
            meta = obj["metadata"]
            found[f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]] = obj
    return found


BOT_NAMESPACE = "k8s-incident-bot"


@pytest.fixture(scope="module")
def bot_namespace(kubectl: Path, k8s_cluster: Any) -> Iterator[str]:
    """The bot's namespace, created for real (namespaced objects cannot be dry-run into a missing one)."""
    kubeconfig = k8s_cluster.kubeconfig
    # A previous module's namespace may still be terminating.
    run_kubectl(kubectl, "wait", "--for=delete", f"namespace/{BOT_NAMESPACE}", "--timeout=90s", kubeconfig=kubeconfig,
                check=False)
    run_kubectl(kubectl, "apply", "-f", str(DEPLOY / "base" / "namespace.yaml"), kubeconfig=kubeconfig)
    try:
        yield BOT_NAMESPACE
    finally:
        run_kubectl(kubectl, "delete", "namespace", BOT_NAMESPACE, "--wait=false", "--ignore-not-found", kubeconfig=kubeconfig)


CHART = DEPLOY / "helm" / "k8s-incident-bot"
CHART_CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
"""The documented values combinations (deploy/README.md, "Helm values"): each is linted, rendered,
dry-run on the server and RBAC-checked."""


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> "Helm":
    """The pinned helm (built from the Go module proxy on first use, like the test bed) with its own
    config/cache/data directories, so the tests neither read nor write the user's helm set-up."""
    from sandbox.binaries import ensure_helm

    binary = ensure_helm(lambda message: print(f"[helm] {message}", file=sys.stderr, flush=True))
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


class Helm:
    """Runs the helm binary; ``check=True`` turns a failure into an assertion carrying helm's output."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}

    def __call__(self, *args: str, kubeconfig: Path | None = None, check: bool = True,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        result = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=timeout, env=env,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n{result.stdout}")
        return result

    def template(self, *args: str, release: str = "bot", namespace: str = BOT_NAMESPACE) -> list[dict[str, Any]]:
        """``helm template`` → the rendered objects."""
        output = self("template", release, str(CHART), "--namespace", namespace, *args).stdout
        return [doc for doc in yaml.safe_load_all(output) if doc]
