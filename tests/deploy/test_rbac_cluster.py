"""The RBAC manifests on the real test-bed apiserver, used through the bot's ServiceAccount token.

Read-only install (deploy/base): a full assessment finishes with every check permitted, and any action
fails with the bot's "not permitted" message. With the actions component: a cordon (and uncordon) goes
through. Either way, writes outside the roles (delete a namespace, read Secrets, create a pod) are refused.
With the impersonation component and ``KUBE_IMPERSONATE``: each action runs as the requester's mapped
user and groups, and the people's own RBAC decides.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from incident.actions import ActionRequest
from incident.errors import NotPermitted
from incident.settings import Settings
from kube.assessor import assess
from kube.impersonation import ImpersonatingExecutor, action_executor
from kube.actions import KubeExecutor
from sandbox.cluster import LocalCluster
from sandbox.objects import wait_for
from tests.deploy.conftest import DEPLOY, kustomize, run_kubectl

pytestmark = pytest.mark.cluster

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
SERVICE_ACCOUNT = "k8s-incident-bot"
T = TypeVar("T")


def _apply(kubectl: Path, cluster: LocalCluster, objects: list[dict[str, Any]], *, delete: bool = False) -> None:
    documents = yaml.safe_dump_all(objects)
    args = ["delete", "--ignore-not-found", "--wait=false", "-f", "-"] if delete else ["apply", "-f", "-"]
    run_kubectl(kubectl, *args, stdin=documents, kubeconfig=cluster.kubeconfig)


@pytest.fixture(scope="module")
def read_only_install(kubectl: Path, k8s_cluster: LocalCluster, bot_namespace: str) -> Iterator[list[dict[str, Any]]]:
    """The ServiceAccount and read RBAC of deploy/base, applied for real."""
    objects = [o for o in kustomize(kubectl, DEPLOY / "base") if o["kind"] in RBAC_KINDS]
    _apply(kubectl, k8s_cluster, objects)
    try:
        yield objects
    finally:
        _apply(kubectl, k8s_cluster, [o for o in objects if o["kind"] != "ServiceAccount"], delete=True)


@pytest.fixture()
def actions_install(kubectl: Path, k8s_cluster: LocalCluster, read_only_install: list[dict[str, Any]]) -> Iterator[None]:
    """The actions component's ClusterRole and binding (as the example overlay renders them), for one test."""
    objects = [o for o in kustomize(kubectl, DEPLOY / "overlays" / "example")
               if o["kind"] in ("ClusterRole", "ClusterRoleBinding") and o["metadata"]["name"] == "k8s-incident-bot-actions"]
    assert len(objects) == 2
    _apply(kubectl, k8s_cluster, objects)
    try:
        yield
    finally:
        _apply(kubectl, k8s_cluster, objects, delete=True)


@pytest.fixture(scope="module")
def sa_kubeconfig(k8s_cluster: LocalCluster, bot_namespace: str, read_only_install: list[dict[str, Any]],
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig that authenticates with a fresh TokenRequest token of the bot's ServiceAccount."""
    with k8s_cluster.api_client() as admin:
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        token = k8s.CoreV1Api(admin).create_namespaced_service_account_token(SERVICE_ACCOUNT, bot_namespace, request).status.token
    assert k8s_cluster.pki is not None
    document = {
        "apiVersion": "v1", "kind": "Config", "current-context": "bot",
        "clusters": [{"name": "sandbox", "cluster": {"server": k8s_cluster.server,
                                                     "certificate-authority": str(k8s_cluster.pki.ca.cert)}}],
        "users": [{"name": "bot", "user": {"token": token}}],
        "contexts": [{"name": "bot", "context": {"cluster": "sandbox", "user": "bot"}}],
    }
    path = tmp_path_factory.mktemp("bot-identity") / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


@pytest.fixture()
def bot_api(sa_kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=str(sa_kubeconfig))
    try:
        yield api
    finally:
        api.close()


def _settings(kubeconfig: Path) -> Settings:
    return Settings(_env_file=None, kubeconfig=kubeconfig, cluster_name="sandbox",  # type: ignore[call-arg]
                    kube_request_timeout_seconds=10)


def _request(kind: str, target: str) -> ActionRequest:
    return ActionRequest(id=f"A{secrets.randbelow(10**6)}", cluster="sandbox", kind=kind, target=target,
                         requested_by="U_ALICE", channel_id="C_TEST", requested_at=datetime.now(timezone.utc))


def _schedulable_node(k8s_api: k8s.ApiClient) -> str:
    nodes = k8s.CoreV1Api(k8s_api).list_node(label_selector="type=kwok").items
    return next(n.metadata.name for n in reversed(nodes) if not (n.spec and n.spec.unschedulable))


def _forbidden(call: Callable[[], object]) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value
    return caught.value


def _eventually(call: Callable[[], T], timeout: float = 15.0) -> T:
    """RBAC changes reach the authorizer's cache within moments; retry a NotPermitted until then."""
    result: list[T] = []

    def attempt() -> bool:
        try:
            result.append(call())
        except NotPermitted:
            return False
        return True

    wait_for("the new RBAC to take effect", attempt, timeout=timeout)
    return result[0]


def test_the_token_is_the_bots_service_account(bot_api: k8s.ApiClient, bot_namespace: str) -> None:
    review = k8s.AuthenticationV1Api(bot_api).create_self_subject_review(k8s.V1SelfSubjectReview())
    assert review.status.user_info.username == f"system:serviceaccount:{bot_namespace}:{SERVICE_ACCOUNT}"


def test_read_only_identity_runs_a_full_assessment(sa_kubeconfig: Path) -> None:
    assessment = assess(_settings(sa_kubeconfig))
    by_name = {check.name: check for check in assessment.checks}
    problems = {name: check.summary for name, check in by_name.items()
                if check.status in ("error", "timeout") or "forbidden" in check.summary.lower()
                or "not permitted" in check.summary.lower()}
    assert not problems, problems
    skipped = {name for name, check in by_name.items() if check.status == "skipped"}
    assert skipped <= {"etcd"}, skipped  # no ETCD_ENDPOINTS configured: etcd is seen through /readyz/etcd only
    assert by_name["apiserver"].facts["etcd_detail"] == "ok"  # /readyz/etcd was readable
    assert len(by_name) >= 8


def test_read_only_install_makes_actions_fail_with_not_permitted(sa_kubeconfig: Path, k8s_api: k8s.ApiClient) -> None:
    node = _schedulable_node(k8s_api)
    executor = KubeExecutor.from_settings(_settings(sa_kubeconfig))
    for kind, target in (("cordon", node), ("delete-node", node), ("delete-pod", "kube-system/x")):
        with pytest.raises(NotPermitted) as caught:
            executor.prepare(_request(kind, target))
        text = caught.value.user_text()
        assert "The bot's Kubernetes identity may not" in text and "RBAC" in text, text
    with pytest.raises(NotPermitted):
        executor.execute(_request("cordon", node), guard=lambda: None, progress=lambda _: None)
    assert not k8s.CoreV1Api(k8s_api).read_node(node).spec.unschedulable


def test_actions_component_lets_the_identity_cordon_and_uncordon(sa_kubeconfig: Path, k8s_api: k8s.ApiClient,
                                                                 actions_install: None) -> None:
    node = _schedulable_node(k8s_api)
    core = k8s.CoreV1Api(k8s_api)
    executor = KubeExecutor.from_settings(_settings(sa_kubeconfig))
    try:
        summary = _eventually(lambda: executor.prepare(_request("cordon", node)))
        assert "unschedulable false → true" in summary
        assert not core.read_node(node).spec.unschedulable  # the dry-run changed nothing
        outcome = executor.execute(_request("cordon", node), guard=lambda: None, progress=lambda _: None)
        assert outcome.succeeded, outcome
        assert core.read_node(node).spec.unschedulable is True
        assert "true → false" in executor.prepare(_request("uncordon", node))
        assert executor.execute(_request("uncordon", node), guard=lambda: None, progress=lambda _: None).succeeded
        assert not core.read_node(node).spec.unschedulable
    finally:
        core.patch_node(node, {"spec": {"unschedulable": False}})


def test_writes_outside_the_roles_are_forbidden(bot_api: k8s.ApiClient, k8s_api: k8s.ApiClient,
                                                actions_install: None) -> None:
    victim = f"t-victim-{secrets.token_hex(3)}"
    admin = k8s.CoreV1Api(k8s_api)
    admin.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": victim}})
    try:
        core, apps = k8s.CoreV1Api(bot_api), k8s.AppsV1Api(bot_api)
        _forbidden(lambda: core.delete_namespace(victim))
        _forbidden(lambda: core.list_namespaced_secret("kube-system"))
        _forbidden(lambda: core.list_secret_for_all_namespaces())
        _forbidden(lambda: core.read_namespaced_secret("anything", victim))
        _forbidden(lambda: core.create_namespaced_secret(victim, {"metadata": {"name": "s"}, "stringData": {"a": "b"}}))
        _forbidden(lambda: core.create_namespaced_pod(victim, {"metadata": {"name": "p"},
                                                               "spec": {"containers": [{"name": "c", "image": "x"}]}}))
        _forbidden(lambda: core.list_namespaced_config_map("kube-system"))
        _forbidden(lambda: apps.delete_namespaced_deployment("coredns", "kube-system"))
        _forbidden(lambda: k8s.RbacAuthorizationV1Api(bot_api).create_cluster_role_binding(
            {"metadata": {"name": "escalate"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                           "name": "cluster-admin"},
             "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": "k8s-incident-bot"}]}))
        assert admin.read_namespace(victim).status.phase == "Active"
    finally:
        admin.delete_namespace(victim)


# -- actions as the requester (deploy/components/impersonation + KUBE_IMPERSONATE) ----------------------

IMPERSONATED = {"U_ALICE": "alice", "U_MALLORY": "mallory",
                "U_CAROL": {"user": "carol", "groups": ["viewers", "oncall"]}}


@pytest.fixture()
def impersonation_install(kubectl: Path, k8s_cluster: LocalCluster, bot_namespace: str,
                          read_only_install: list[dict[str, Any]]) -> Iterator[None]:
    """The component's role (its resourceNames set to this test's people) bound to the bot, and the people's
    own RBAC: ``alice`` (a user binding) and the group ``oncall`` may cordon; ``mallory`` and ``viewers`` may not."""
    component = list(yaml.safe_load_all((DEPLOY / "components" / "impersonation" / "rbac-impersonation.yaml").read_text()))
    role, binding = component
    role["rules"][0]["resourceNames"] = ["alice", "mallory", "carol"]
    role["rules"][1]["resourceNames"] = ["viewers", "oncall"]
    binding["subjects"][0]["namespace"] = bot_namespace
    people_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "t-cordoners"},
                   "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},
                             {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}
    people_binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                      "metadata": {"name": "t-cordoners"},
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "t-cordoners"},
                      "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
                                   {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "oncall"}]}
    objects = [role, binding, people_role, people_binding]
    _apply(kubectl, k8s_cluster, objects)
    try:
        yield
    finally:
        _apply(kubectl, k8s_cluster, objects, delete=True)


def _as(user: str, kind: str, target: str) -> ActionRequest:
    return replace(_request(kind, target), requested_by=user)


def test_actions_run_as_the_requesters_identity_and_the_clusters_rbac_decides(
        sa_kubeconfig: Path, k8s_api: k8s.ApiClient, impersonation_install: None) -> None:
    node = _schedulable_node(k8s_api)
    core = k8s.CoreV1Api(k8s_api)
    settings = _settings(sa_kubeconfig).model_copy(update={"kube_impersonate": Settings(
        _env_file=None, kube_impersonate=IMPERSONATED).kube_impersonate})  # type: ignore[call-arg]
    executor = action_executor(settings)
    assert isinstance(executor, ImpersonatingExecutor)
    no_op = {"guard": lambda: None, "progress": lambda _: None}
    try:
        summary = _eventually(lambda: executor.prepare(_as("U_ALICE", "cordon", node)))
        assert "unschedulable false → true" in summary and "runs as Kubernetes user `alice`" in summary
        outcome = executor.execute(_as("U_ALICE", "cordon", node), **no_op)  # type: ignore[arg-type]
        assert outcome.succeeded and "(as Kubernetes user `alice`)" in outcome.text, outcome
        assert core.read_node(node).spec.unschedulable is True

        # carol is allowed only through her *second* group: both Impersonate-Group headers reach the server.
        summary = executor.prepare(_as("U_CAROL", "uncordon", node))
        assert "runs as Kubernetes user `carol (groups: viewers, oncall)`" in summary
        assert executor.execute(_as("U_CAROL", "uncordon", node), **no_op).succeeded  # type: ignore[arg-type]
        assert not core.read_node(node).spec.unschedulable

        with pytest.raises(NotPermitted) as caught:
            executor.prepare(_as("U_MALLORY", "cordon", node))
        assert "Kubernetes user `mallory` may not read Node" in caught.value.user_text()
        assert "RBAC decided" in caught.value.user_text()
        with pytest.raises(NotPermitted) as caught:
            executor.execute(_as("U_MALLORY", "cordon", node), **no_op)  # type: ignore[arg-type]
        with pytest.raises(NotPermitted) as caught:
            executor.prepare(_as("U_NOBODY", "cordon", node))
        assert "Slack user `U_NOBODY` has no Kubernetes identity mapped" in caught.value.user_text()
        assert "KUBE_IMPERSONATE" in caught.value.user_text()
        assert not core.read_node(node).spec.unschedulable  # the refusals changed nothing
    finally:
        core.patch_node(node, {"spec": {"unschedulable": False}})


def test_without_the_component_the_bot_may_not_impersonate(sa_kubeconfig: Path, k8s_api: k8s.ApiClient) -> None:
    node = _schedulable_node(k8s_api)
    settings = _settings(sa_kubeconfig).model_copy(update={"kube_impersonate": Settings(
        _env_file=None, kube_impersonate={"U_ALICE": "alice"}).kube_impersonate})  # type: ignore[call-arg]
    with pytest.raises(NotPermitted) as caught:
        action_executor(settings).prepare(_as("U_ALICE", "cordon", node))
    assert "Kubernetes user `alice` may not read Node" in caught.value.user_text()
    assert "impersonate" in caught.value.user_text()  # the API server says the bot cannot impersonate
