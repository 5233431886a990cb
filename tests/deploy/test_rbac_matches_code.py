"""The RBAC manifests grant exactly what the code uses: the read role what the checks read, the actions
role what kube/actions/ calls — nothing missing, nothing extra (derived from the source)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.deploy.rbac_from_code import (
    Access,
    access_for_client_method,
    access_for_path,
    actions_access,
    assessment_access,
    covers,
    rules_access,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BOT_READYZ = {Access("get", "*nonresource*", "/version")}
"""The bot's own /readyz asks the apiserver for /version (bot/server.py)."""


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _explain(accesses: set[Access]) -> list[str]:
    return sorted(f"{a.verb} {a.group or 'core'}/{a.resource}" + (f" in {a.namespace}" if a.namespace else "")
                  for a in accesses)


def test_path_and_method_mapping() -> None:
    assert access_for_path("/api/v1/nodes") == Access("list", "", "nodes")
    assert access_for_path("/apis/apps/v1/namespaces/kube-system/deployments") == Access("list", "apps", "deployments", "kube-system")
    assert access_for_path("/api/v1/namespaces/ns/pods/p/log") == Access("get", "", "pods/log", "ns")
    assert access_for_path("/readyz/etcd") == Access("get", "*nonresource*", "/readyz/etcd")
    assert access_for_client_method("apps", "patch_namespaced_deployment_scale") == Access("patch", "apps", "deployments/scale")
    assert access_for_client_method("core", "create_namespaced_pod_eviction") == Access("create", "", "pods/eviction")
    assert access_for_client_method("core", "list_pod_for_all_namespaces") == Access("list", "", "pods")
    assert access_for_client_method("apps", "read_namespaced_daemon_set") == Access("get", "apps", "daemonsets")


def test_read_role_covers_every_request_of_the_assessment() -> None:
    needed = assessment_access() | BOT_READYZ
    assert len(needed) > 10, "the scan found too little; did kube/checks move?"
    granted = rules_access(_documents(DEPLOY / "base" / "rbac-read.yaml"))
    missing = {access for access in needed if not covers(granted, access)}
    assert not missing, f"grant these in deploy/base/rbac-read.yaml: {_explain(missing)}"


def test_read_role_grants_nothing_the_assessment_does_not_use() -> None:
    needed = assessment_access() | BOT_READYZ
    granted = rules_access(_documents(DEPLOY / "base" / "rbac-read.yaml"))
    extra = {grant for grant in granted if not any(covers({grant}, access) for access in needed)}
    assert not extra, f"remove from deploy/base/rbac-read.yaml (no check uses them): {_explain(extra)}"
    # Namespaced grants only where a ClusterRole does not already cover them.
    redundant = {g for g in granted if g.namespace and Access(g.verb, g.group, g.resource) in granted}
    assert not redundant, _explain(redundant)
    assert not any(g.verb in ("create", "update", "patch", "delete", "deletecollection") for g in granted)
    assert not any(g.resource in ("secrets", "configmaps") for g in granted)


def test_actions_role_is_exactly_what_the_mutations_call() -> None:
    needed = actions_access()
    assert Access("create", "", "pods/eviction") in needed, "the scan found no eviction; did kube/actions/ move?"
    granted = rules_access(_documents(DEPLOY / "components" / "actions" / "rbac-actions.yaml"))
    assert {g.namespace for g in granted} == {None}
    missing, extra = needed - granted, granted - needed
    assert not missing, f"grant these in deploy/components/actions/rbac-actions.yaml: {_explain(missing)}"
    assert not extra, f"remove from deploy/components/actions/rbac-actions.yaml (nothing calls them): {_explain(extra)}"


def test_bindings_name_the_bots_service_account() -> None:
    for path in (DEPLOY / "base" / "rbac-read.yaml", DEPLOY / "components" / "actions" / "rbac-actions.yaml"):
        documents = _documents(path)
        roles = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in documents if d["kind"].endswith("Role")}
        for binding in (d for d in documents if d["kind"].endswith("Binding")):
            ref = binding["roleRef"]
            namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
            assert (ref["kind"], ref["name"], namespace) in roles, binding["metadata"]["name"]
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "k8s-incident-bot"}]
