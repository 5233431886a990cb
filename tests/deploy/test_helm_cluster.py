"""The Helm chart on the real test-bed apiserver: server-side dry-run of every documented values
combination, the RBAC of each access mode used through the chart's ServiceAccount token, and a real
``helm install`` → ``helm upgrade`` → ``helm uninstall`` (kwok runs the pods) that leaves nothing behind.

The ServiceMonitor kind is not built into Kubernetes: the dry-run registers a CustomResourceDefinition
for ``monitoring.coreos.com/v1 ServiceMonitor`` whose schema holds only the fields the chart writes
(selector, endpoints' port/path/interval), so strict field validation still rejects a misspelt field.
It is a minimal stand-in for the Prometheus Operator's CRD, which is not shipped here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException


from incident.errors import NotPermitted
from kube.actions import KubeExecutor
from sandbox.cluster import LocalCluster
from sandbox.objects import wait_for
from tests.deploy.conftest import CHART, CHART_CI_VALUES, Helm, run_kubectl
from tests.deploy.test_rbac_cluster import _request, _schedulable_node, _settings

pytestmark = pytest.mark.cluster

SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor",
                       "listKind": "ServiceMonitorList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "properties": {
                     "selector": {"type": "object", "properties": {
                         "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                     "endpoints": {"type": "array", "items": {"type": "object", "properties": {
                         "port": {"type": "string"}, "path": {"type": "string"}, "interval": {"type": "string"}}}}}}}}}}]},
}


def _namespace(kubeconfig: Path, kubectl: Path, name: str) -> None:
    """Create a namespace and wait for its ``default`` ServiceAccount (pods are refused before it exists)."""
    run_kubectl(kubectl, "create", "namespace", name, kubeconfig=kubeconfig)
    wait_for(f"ServiceAccount default in {name}", lambda: run_kubectl(
        kubectl, "get", "serviceaccount", "default", "-n", name, kubeconfig=kubeconfig, check=False).returncode == 0,
        timeout=60)


@pytest.fixture()
def release_namespace(kubectl: Path, k8s_cluster: LocalCluster) -> Iterator[str]:
    name = f"h-{secrets.token_hex(3)}"
    _namespace(k8s_cluster.kubeconfig, kubectl, name)
    try:
        yield name
    finally:
        run_kubectl(kubectl, "delete", "namespace", name, "--wait=false", "--ignore-not-found",
                    kubeconfig=k8s_cluster.kubeconfig, check=False)


@pytest.fixture(scope="module")
def service_monitor_crd(kubectl: Path, k8s_cluster: LocalCluster) -> Iterator[None]:
    run_kubectl(kubectl, "apply", "-f", "-", stdin=yaml.safe_dump(SERVICE_MONITOR_CRD), kubeconfig=k8s_cluster.kubeconfig)
    run_kubectl(kubectl, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com",
                "--timeout=60s", kubeconfig=k8s_cluster.kubeconfig)
    try:
        yield
    finally:
        run_kubectl(kubectl, "delete", "crd", "servicemonitors.monitoring.coreos.com", "--ignore-not-found",
                    "--wait=false", kubeconfig=k8s_cluster.kubeconfig, check=False)


@pytest.mark.parametrize("values", CHART_CI_VALUES, ids=lambda p: p.name)
def test_each_combination_passes_a_server_side_dry_run(helm: Helm, kubectl: Path, k8s_cluster: LocalCluster,
                                                       release_namespace: str, service_monitor_crd: None,
                                                       values: Path) -> None:
    rendered = helm("template", "bot", str(CHART), "-n", release_namespace, "-f", str(values)).stdout
    result = run_kubectl(kubectl, "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=rendered,
                         kubeconfig=k8s_cluster.kubeconfig)
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    assert len(applied) == len(documents), result.stdout


# -- RBAC, used through the chart's ServiceAccount token ----------------------------------------------------

MODES: dict[str, tuple[str, ...]] = {
    "read-only": (),
    "actions": ("--set", "cluster.accessMode=actions"),
    "impersonation": ("--set", "cluster.accessMode=impersonation", "--set", "cluster.impersonate.U1=alice",
                      "--set", "cluster.impersonate.U2.user=carol", "--set", "cluster.impersonate.U2.groups[0]=oncall"),
}

# (verb, resource[/name], extra args) for `kubectl auth can-i` → allowed, per mode. Reads hold in every mode.
READS = [("list", "nodes", ()), ("list", "pods", ("-A",)), ("list", "events", ("-A",)),
         ("list", "endpointslices.discovery.k8s.io", ("-A",)), ("list", "deployments.apps", ("-n", "kube-system")),
         ("list", "leases.coordination.k8s.io", ("-n", "kube-node-lease")), ("get", "/readyz", ())]
NEVER = [("get", "secrets", ("-n", "kube-system")), ("list", "configmaps", ("-n", "kube-system")),
         ("create", "pods", ("-n", "default")), ("delete", "namespaces", ()),
         ("create", "clusterrolebindings.rbac.authorization.k8s.io", ()), ("list", "deployments.apps", ("-n", "default")),
         ("impersonate", "users/system:admin", ()), ("impersonate", "groups/system:masters", ())]
ACTION_VERBS = [("patch", "nodes", ()), ("delete", "nodes", ()), ("create", "pods", ("-n", "default", "--subresource=eviction")),
                ("delete", "pods", ("-n", "default")), ("patch", "deployments.apps", ("-n", "default")),
                ("patch", "deployments.apps", ("-n", "default", "--subresource=scale"))]
IMPERSONATE = [("impersonate", "users/alice", ()), ("impersonate", "users/carol", ()), ("impersonate", "groups/oncall", ())]
NOT_MAPPED = [("impersonate", "users/mallory", ()), ("impersonate", "groups/viewers", ())]


def _token_kubeconfig(k8s_cluster: LocalCluster, namespace: str, service_account: str, path: Path) -> Path:
    with k8s_cluster.api_client() as admin:
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        token = k8s.CoreV1Api(admin).create_namespaced_service_account_token(service_account, namespace, request).status.token
    assert k8s_cluster.pki is not None
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "bot",
        "clusters": [{"name": "t", "cluster": {"server": k8s_cluster.server,
                                               "certificate-authority": str(k8s_cluster.pki.ca.cert)}}],
        "users": [{"name": "bot", "user": {"token": token}}],
        "contexts": [{"name": "bot", "context": {"cluster": "t", "user": "bot"}}],
    }))
    path.chmod(0o600)
    return path


def _can(kubectl: Path, kubeconfig: Path, verb: str, resource: str, extra: tuple[str, ...]) -> bool:
    result = run_kubectl(kubectl, "auth", "can-i", verb, resource, *extra, kubeconfig=kubeconfig, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


@pytest.mark.parametrize("mode", list(MODES))
def test_rbac_of_each_mode_through_the_charts_service_account(helm: Helm, kubectl: Path, k8s_cluster: LocalCluster,
                                                              release_namespace: str, mode: str, tmp_path: Path) -> None:
    release = f"r{secrets.token_hex(2)}"
    rendered = helm("template", release, str(CHART), "-n", release_namespace, "--set", "slack.existingSecret=s",
                    "--set", "slack.stakeholderChannel=C1", *MODES[mode]).stdout
    objects = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in
               ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    documents = yaml.safe_dump_all(objects)
    run_kubectl(kubectl, "apply", "-f", "-", stdin=documents, kubeconfig=k8s_cluster.kubeconfig)
    try:
        kubeconfig = _token_kubeconfig(k8s_cluster, release_namespace, f"{release}-k8s-incident-bot", tmp_path / "sa")
        expected = [(check, True) for check in READS] + [(check, False) for check in NEVER]
        expected += [(check, mode == "actions") for check in ACTION_VERBS]
        expected += [(check, mode == "impersonation") for check in IMPERSONATE]
        expected += [(check, False) for check in NOT_MAPPED]

        def mismatches() -> list[str]:
            return [f"{verb} {resource} {' '.join(extra)}: expected {'allowed' if allowed else 'forbidden'}"
                    for (verb, resource, extra), allowed in expected
                    if _can(kubectl, kubeconfig, verb, resource, extra) != allowed]

        wrong = mismatches()
        if wrong:  # new bindings reach the authorizer's cache within moments
            time.sleep(3)
            wrong = mismatches()
        assert not wrong, f"{mode}: {wrong}"

        executor = KubeExecutor.from_settings(_settings(kubeconfig))
        with k8s_cluster.api_client() as admin:
            node = _schedulable_node(admin)
        if mode == "actions":
            assert "unschedulable false → true" in executor.prepare(_request("cordon", node))
        else:
            with pytest.raises(NotPermitted):
                executor.prepare(_request("cordon", node))
    finally:
        run_kubectl(kubectl, "delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=documents,
                    kubeconfig=k8s_cluster.kubeconfig, check=False)


# -- install, upgrade, uninstall for real ------------------------------------------------------------------

def _release_objects(api: k8s.ApiClient, namespace: str, release: str) -> list[str]:
    """Everything labelled with the release (namespaced, the other namespaces it writes to, cluster-wide),
    plus helm's own release Secrets."""
    selector = f"app.kubernetes.io/instance={release}"
    core, apps, rbac = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.RbacAuthorizationV1Api(api)
    policy, net = k8s.PolicyV1Api(api), k8s.NetworkingV1Api(api)
    found = []
    listers: list[tuple[str, Callable[..., Any], tuple[str, ...]]] = [
        ("deployment", apps.list_namespaced_deployment, (namespace,)),
        ("statefulset", apps.list_namespaced_stateful_set, (namespace,)),
        ("pod", core.list_namespaced_pod, (namespace,)),
        ("service", core.list_namespaced_service, (namespace,)),
        ("configmap", core.list_namespaced_config_map, (namespace,)),
        ("secret", core.list_namespaced_secret, (namespace,)),
        ("serviceaccount", core.list_namespaced_service_account, (namespace,)),
        ("pvc", core.list_namespaced_persistent_volume_claim, (namespace,)),
        ("pdb", policy.list_namespaced_pod_disruption_budget, (namespace,)),
        ("networkpolicy", net.list_namespaced_network_policy, (namespace,)),
        ("role", rbac.list_namespaced_role, ("kube-system",)),
        ("role", rbac.list_namespaced_role, ("kube-node-lease",)),
        ("rolebinding", rbac.list_namespaced_role_binding, ("kube-system",)),
        ("rolebinding", rbac.list_namespaced_role_binding, ("kube-node-lease",)),
        ("clusterrole", rbac.list_cluster_role, ()),
        ("clusterrolebinding", rbac.list_cluster_role_binding, ()),
    ]
    for kind, lister, args in listers:
        for item in lister(*args, label_selector=selector).items:
            if item.metadata.deletion_timestamp is None or kind != "pod":
                found.append(f"{kind}/{item.metadata.name}")
    for secret in core.list_namespaced_secret(namespace, label_selector=f"owner=helm,name={release}").items:
        found.append(f"secret/{secret.metadata.name}")
    return found


@pytest.fixture()
def storage(k8s_api: k8s.ApiClient, release_namespace: str) -> Iterator[str]:
    """A StorageClass without a provisioner and one PersistentVolume of it, for the bundled Redis's claim
    (the test bed has no volume plugin; the PV controller binds the claim, kwok runs the pod)."""
    name = f"t-{release_namespace}"
    storage_api, core = k8s.StorageV1Api(k8s_api), k8s.CoreV1Api(k8s_api)
    storage_api.create_storage_class({"metadata": {"name": name}, "provisioner": "kubernetes.io/no-provisioner",
                                      "volumeBindingMode": "Immediate", "reclaimPolicy": "Delete"})
    core.create_persistent_volume({"metadata": {"name": name}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": name,
        "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": f"/tmp/{name}"}}})
    try:
        yield name
    finally:
        for delete in (lambda: core.delete_persistent_volume(name), lambda: storage_api.delete_storage_class(name)):
            try:
                delete()
            except ApiException as error:
                if error.status != 404:
                    raise


def test_install_upgrade_uninstall_on_the_test_bed(helm: Helm, k8s_cluster: LocalCluster, k8s_api: k8s.ApiClient,
                                                   release_namespace: str, storage: str) -> None:
    kubeconfig, namespace, release = k8s_cluster.kubeconfig, release_namespace, "incbot"
    core, apps = k8s.CoreV1Api(k8s_api), k8s.AppsV1Api(k8s_api)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "slack"}, "stringData": {
        "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s"}})
    base = ("-n", namespace, "--set", "slack.existingSecret=slack", "--set", "slack.stakeholderChannel=C0123ABCD",
            "--set", f"redis.bundled.persistence.storageClass={storage}", "--set", "redis.bundled.persistence.size=1Gi",
            "--set", "redis.bundled.persistence.keepOnUninstall=false")

    started = time.monotonic()
    helm("install", release, str(CHART), *base, "--wait", "--timeout", "180s", kubeconfig=kubeconfig)
    print(f"\n[helm] install --wait: {time.monotonic() - started:.1f} s")
    deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(namespace).items}
    assert deployments["incbot-k8s-incident-bot"].status.ready_replicas == 2
    assert deployments["incbot-k8s-incident-bot-worker"].status.ready_replicas == 2
    assert apps.read_namespaced_stateful_set("incbot-k8s-incident-bot-redis", namespace).status.ready_replicas == 1
    claim = core.read_namespaced_persistent_volume_claim("data-incbot-k8s-incident-bot-redis-0", namespace)
    assert claim.status.phase == "Bound" and claim.spec.volume_name == storage
    rbac = k8s.RbacAuthorizationV1Api(k8s_api)
    roles = {r.metadata.name for r in rbac.list_cluster_role(label_selector=f"app.kubernetes.io/instance={release}").items}
    assert roles == {"incbot-k8s-incident-bot-read"}
    status = helm("status", release, "-n", namespace, "-o", "json", kubeconfig=kubeconfig).stdout
    assert '"status":"deployed"' in status.replace(" ", "")

    old_pods = {p.metadata.name for p in core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/component=worker").items}
    started = time.monotonic()
    helm("upgrade", release, str(CHART), *base, "--set", "worker.replicas=3", "--set", "cluster.accessMode=actions",
         "--set", "config.LOG_LEVEL=DEBUG", "--wait", "--timeout", "180s", kubeconfig=kubeconfig)
    print(f"[helm] upgrade --wait: {time.monotonic() - started:.1f} s")
    worker = apps.read_namespaced_deployment("incbot-k8s-incident-bot-worker", namespace)
    assert worker.spec.replicas == 3 and worker.status.ready_replicas == 3
    roles = {r.metadata.name for r in rbac.list_cluster_role(label_selector=f"app.kubernetes.io/instance={release}").items}
    assert roles == {"incbot-k8s-incident-bot-read", "incbot-k8s-incident-bot-actions"}
    config = core.read_namespaced_config_map("incbot-k8s-incident-bot", namespace).data
    assert config["LOG_LEVEL"] == "DEBUG"
    # The config checksum annotation rolled the pods: none of the old ones is kept.
    wait_for("the old worker pods to go", lambda: not old_pods & {
        p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=worker").items
        if p.metadata.deletion_timestamp is None}, timeout=120)
    history = helm("history", release, "-n", namespace, "-o", "yaml", kubeconfig=kubeconfig).stdout
    assert [h["revision"] for h in yaml.safe_load(history)] == [1, 2]

    started = time.monotonic()
    helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "180s", kubeconfig=kubeconfig)
    print(f"[helm] uninstall --wait: {time.monotonic() - started:.1f} s")
    wait_for("every object of the release to be gone", lambda: not _release_objects(k8s_api, namespace, release),
             timeout=120)
    assert not _release_objects(k8s_api, namespace, release)
    assert [s.metadata.name for s in core.list_namespaced_secret(namespace).items if s.type != "kubernetes.io/service-account-token"] == ["slack"]


def test_install_refuses_bad_values_and_installs_nothing(helm: Helm, k8s_cluster: LocalCluster,
                                                         k8s_api: k8s.ApiClient, release_namespace: str) -> None:
    for args, message in (
        (("--set", "cluster.accessMode=admin", "--set", "slack.existingSecret=s", "--set", "slack.stakeholderChannel=C1"),
         "at '/cluster/accessMode': value must be one of 'read-only', 'actions', 'impersonation'"),
        (("--set", "slack.stakeholderChannel=C1"), "slack.botToken is empty"),
    ):
        result = helm("install", "bad", str(CHART), "-n", release_namespace, *args, kubeconfig=k8s_cluster.kubeconfig,
                      check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert not _release_objects(k8s_api, release_namespace, "bad")
