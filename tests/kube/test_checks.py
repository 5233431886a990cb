"""The checks' parsers on API objects built with the kubernetes client's models, serialized as the API serves them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s

from kube.checks import workload_of
from kube.checks.apiserver import latency_finding, parse_health
from kube.checks.certificates import judge_certificate
from kube.checks.dns import summarize_dns
from kube.checks.events import InvolvedObject, find_gone, summarize_events, tally_events
from kube.checks.kube_system import summarize_kube_system
from kube.checks.networking import ingress_selectors, pending_reason, summarize_ingress, summarize_pending, summarize_pod_network
from kube.checks.nodes import lease_ages, summarize_nodes, summarize_pdbs

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
WINDOW = timedelta(minutes=15)
_API = k8s.ApiClient()


def as_json(model: Any) -> dict[str, Any]:
    """A model object as the apiserver sends it (camelCase keys, RFC 3339 times)."""
    return _API.sanitize_for_serialization(model)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def node(name: str, ready: str = "True", *, unschedulable: bool = False, pressure: str | None = None) -> dict[str, Any]:
    conditions = [k8s.V1NodeCondition(type="Ready", status=ready)]
    if pressure:
        conditions.append(k8s.V1NodeCondition(type=pressure, status="True"))
    return as_json(k8s.V1Node(metadata=k8s.V1ObjectMeta(name=name), spec=k8s.V1NodeSpec(unschedulable=unschedulable),
                              status=k8s.V1NodeStatus(conditions=conditions)))


def lease(name: str, renewed: datetime | None, namespace: str = "kube-node-lease", duration: int = 40) -> dict[str, Any]:
    return as_json(k8s.V1Lease(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace),
                               spec=k8s.V1LeaseSpec(renew_time=renewed, lease_duration_seconds=duration)))


def pod(name: str, namespace: str = "kube-system", *, phase: str = "Running", ready: bool = True, waiting: str | None = None,
        restarts: int = 0, last_finished: datetime | None = None, labels: dict[str, str] | None = None,
        owner: tuple[str, str] | None = None, scheduled: tuple[str, str] | None = None, node_name: str | None = "n1") -> dict[str, Any]:
    state = k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason=waiting)) if waiting else \
        k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=ago(600)))
    last = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=1, finished_at=last_finished)) \
        if last_finished else None
    conditions = [k8s.V1PodCondition(type="Ready", status="True" if ready else "False")]
    if scheduled:
        conditions.append(k8s.V1PodCondition(type="PodScheduled", status="False", reason=scheduled[0], message=scheduled[1]))
    owners = [k8s.V1OwnerReference(api_version="apps/v1", kind=owner[0], name=owner[1], uid="u", controller=True)] if owner else None
    return as_json(k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels, owner_references=owners),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="i")], node_name=node_name),
        status=k8s.V1PodStatus(phase=phase, conditions=conditions, container_statuses=[k8s.V1ContainerStatus(
            name="c", image="i", image_id="", ready=ready, restart_count=restarts, state=state, last_state=last)]),
    ))


def event(reason: str, message: str, *, kind: str = "Pod", name: str = "p", namespace: str = "default", count: int = 1,
          last: datetime = NOW, type_: str = "Warning", host: str = "n1") -> dict[str, Any]:
    return as_json(k8s.CoreV1Event(
        metadata=k8s.V1ObjectMeta(name=f"{name}.1", namespace=namespace), reason=reason, message=message, type=type_,
        involved_object=k8s.V1ObjectReference(kind=kind, name=name, namespace=namespace), count=count,
        last_timestamp=last, source=k8s.V1EventSource(host=host),
    ))


# -- apiserver ---------------------------------------------------------------------------------------


def test_readyz_verbose_output_is_parsed() -> None:
    passing, failing = parse_health("[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[-]informer-sync failed\nreadyz check failed")
    assert passing == ["ping", "log"]
    assert failing == {"etcd": "failed: reason withheld", "informer-sync": "failed"}


def test_apiserver_latency_over_100_ms_is_flagged() -> None:
    finding = latency_finding("https://x", [150, 160, 170], (200, "[+]ping ok", 20.0), (200, "ok", 10.0), (200, "ok", 5.0), 100)
    assert finding.status == "warn"
    assert finding.facts["slow"] is True and finding.facts["degraded"] is False
    assert finding.facts["latency_ms"] == 160
    assert "cheap request 160 ms" in finding.facts["slowest"]


def test_failing_readyz_and_etcd_fail_the_check() -> None:
    finding = latency_finding("https://x", [10], (500, "[+]ping ok\n[-]etcd failed: reason withheld", 12.0),
                              (200, "ok", 3.0), (500, "[-]etcd failed", 4.0), 100)
    assert finding.status == "fail"
    assert finding.facts["etcd_ok"] is False
    assert finding.facts["readyz_failed"] == ["etcd (failed: reason withheld)"]


def test_fast_and_ready_apiserver_is_ok() -> None:
    finding = latency_finding("https://x", [8, 9, 30], (200, "[+]ping ok", 12.0), (200, "ok", 3.0), (200, "ok", 4.0), 100)
    assert finding.status == "ok" and finding.facts["slow"] is False and finding.facts["readyz_failed"] == []


# -- nodes ---------------------------------------------------------------------------------------------


def test_node_states_pressure_cordons_and_stale_leases() -> None:
    nodes = [node("a"), node("b", "False"), node("c", "Unknown"), node("d", pressure="DiskPressure"), node("e", unschedulable=True)]
    leases = [lease("a", ago(5)), lease("b", ago(5)), lease("c", ago(600)), lease("d", ago(10)), lease("e", ago(10))]
    finding = summarize_nodes(iter(nodes), lease_ages(leases, lambda: NOW))
    facts = finding.facts
    assert finding.status == "fail"
    assert (facts["total"], facts["ready"], facts["not_ready"], facts["unknown"]) == (5, 3, 1, 1)
    assert facts["not_ready_names"] == ["b"] and facts["unknown_names"] == ["c"]
    assert facts["pressure"] == ["d DiskPressure"]
    assert facts["cordoned_names"] == ["e"]
    assert facts["stale_leases"] == 1 and facts["stale_lease_names"] == ["c (600 s ago)"]


def test_all_ready_nodes_are_ok_and_lists_stay_bounded() -> None:
    nodes = [node(f"n{i}", "False") for i in range(40)]
    finding = summarize_nodes(iter(nodes), {f"n{i}": 1.0 for i in range(40)})
    assert finding.facts["not_ready"] == 40
    assert len(finding.facts["not_ready_names"]) == 11 and finding.facts["not_ready_names"][-1] == "… 30 more"
    assert summarize_nodes(iter([node("a")]), {"a": 3.0}).status == "ok"


def test_pdb_allowing_no_disruption_is_reported() -> None:
    blocking = as_json(k8s.V1PodDisruptionBudget(
        metadata=k8s.V1ObjectMeta(name="payments", namespace="default"),
        status=k8s.V1PodDisruptionBudgetStatus(current_healthy=2, desired_healthy=2, disruptions_allowed=0, expected_pods=2)))
    fine = as_json(k8s.V1PodDisruptionBudget(
        metadata=k8s.V1ObjectMeta(name="web", namespace="default"),
        status=k8s.V1PodDisruptionBudgetStatus(current_healthy=3, desired_healthy=2, disruptions_allowed=1, expected_pods=3)))
    finding = summarize_pdbs([blocking, fine])
    assert finding.status == "warn"
    assert finding.facts["blocking"] == ["default/payments (2/2 healthy)"]


# -- kube-system ---------------------------------------------------------------------------------------


def test_kube_system_crashloop_climbing_restarts_and_control_plane() -> None:
    pods = [
        pod("metrics-server-5d8f9-abcde", waiting="CrashLoopBackOff", ready=False, restarts=7, last_finished=ago(30),
            owner=("ReplicaSet", "metrics-server-5d8f9")),
        pod("kube-proxy-x", restarts=9, last_finished=ago(3600)),  # old restarts: not climbing
        pod("kube-scheduler-cp1", ready=False, labels={"component": "kube-scheduler"}),
        pod("kube-apiserver-cp1", labels={"component": "kube-apiserver"}),
        pod("job-done", phase="Succeeded", ready=False),
    ]
    leases = [lease("kube-controller-manager", ago(300), "kube-system", 15), lease("kube-scheduler", ago(2), "kube-system", 15)]
    statuses = [{"metadata": {"name": "scheduler"}, "conditions": [{"type": "Healthy", "status": "False", "message": "refused"}]}]
    finding = summarize_kube_system(pods, NOW, WINDOW, leases, statuses)
    facts = finding.facts
    assert finding.status == "fail"
    assert facts["crashlooping"] == ["metrics-server-5d8f9-abcde (7 restarts)"]
    assert facts["crashlooping_workloads"] == ["Deployment/metrics-server"]
    assert facts["restarts_climbing"] == ["metrics-server-5d8f9-abcde (7 restarts)"]
    assert facts["control_plane_visible"] == ["kube-apiserver", "kube-scheduler"]
    assert facts["control_plane_unhealthy"] == ["kube-scheduler (kube-scheduler-cp1: Running)"]
    assert facts["stale_leader_leases"] == ["kube-controller-manager (300 s ago)"]
    assert facts["componentstatus_unhealthy"] == ["scheduler: refused"]


def test_managed_control_plane_is_not_a_failure() -> None:
    finding = summarize_kube_system([pod("coredns-1"), pod("aws-node-1")], NOW, WINDOW, [], None)
    assert finding.status == "ok"
    assert "not visible" in finding.summary
    assert finding.facts["componentstatuses_read"] is False


def test_workload_of_strips_the_replicaset_hash() -> None:
    assert workload_of(pod("x", owner=("ReplicaSet", "coredns-79b88bdc95"))) == "Deployment/coredns"
    assert workload_of(pod("y", owner=("DaemonSet", "aws-node"))) == "DaemonSet/aws-node"
    assert workload_of(pod("z")) == "Pod/z"


# -- DNS ---------------------------------------------------------------------------------------------


def dns_deployment(ready: int, desired: int = 2) -> dict[str, Any]:
    return as_json(k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="coredns", namespace="kube-system", labels={"k8s-app": "kube-dns"}),
        spec=k8s.V1DeploymentSpec(replicas=desired, selector=k8s.V1LabelSelector(match_labels={"k8s-app": "kube-dns"}),
                                  template=k8s.V1PodTemplateSpec()),
        status=k8s.V1DeploymentStatus(ready_replicas=ready, available_replicas=ready)))


def endpoint_slice(*ready: bool | None, service: str = "kube-dns", namespace: str = "kube-system") -> dict[str, Any]:
    return as_json(k8s.V1EndpointSlice(
        metadata=k8s.V1ObjectMeta(name=f"{service}-x", namespace=namespace, labels={"kubernetes.io/service-name": service}),
        address_type="IPv4",
        endpoints=[k8s.V1Endpoint(addresses=["10.0.0.1"], conditions=k8s.V1EndpointConditions(ready=r)) for r in ready]))


def test_dns_with_no_ready_endpoints_fails() -> None:
    finding = summarize_dns([dns_deployment(0)], [endpoint_slice(False, False)])
    assert finding.status == "fail"
    assert finding.facts["ready_endpoints_zero"] is True and finding.facts["ready_replicas_zero"] is True
    assert finding.facts["degraded"] is False


def test_dns_partially_ready_is_degraded_and_unset_ready_counts_as_ready() -> None:
    finding = summarize_dns([dns_deployment(1)], [endpoint_slice(None, False)])
    assert finding.status == "warn"
    assert finding.facts["ready_endpoints"] == 1 and finding.facts["degraded"] is True
    assert summarize_dns([dns_deployment(2)], [endpoint_slice(True, True)]).status == "ok"


def test_cluster_without_dns_is_a_warning_not_a_cascade() -> None:
    finding = summarize_dns([], [])
    assert finding.status == "warn" and finding.facts["ready_endpoints_zero"] is None


# -- networking --------------------------------------------------------------------------------------


def test_pending_pods_grouped_by_reason() -> None:
    pods = [
        pod("a", "shop", phase="Pending", ready=False, scheduled=("Unschedulable", "0/3 nodes are available: Insufficient cpu."),
            node_name=None, owner=("ReplicaSet", "web-1234")),
        pod("b", "shop", phase="Pending", ready=False, waiting="ContainerCreating", owner=("ReplicaSet", "web-1234")),
        pod("c", "batch", phase="Pending", ready=False, waiting="ImagePullBackOff"),
    ]
    assert pending_reason(pods[0]) == ("Unschedulable", "0/3 nodes are available: Insufficient cpu.")
    finding = summarize_pending(iter(pods))
    assert finding.status == "warn"
    assert finding.facts["by_reason"] == {"ContainerCreating": 1, "ImagePullBackOff": 1, "Unschedulable": 1}
    assert finding.facts["by_workload"]["shop/Deployment/web"] == 2
    assert "Insufficient cpu" in finding.facts["unschedulable_example"]
    assert summarize_pending(iter([])).status == "ok"


def cni(name: str, desired: int, ready: int) -> dict[str, Any]:
    spec = k8s.V1DaemonSetSpec(selector=k8s.V1LabelSelector(match_labels={"k8s-app": name}), template=k8s.V1PodTemplateSpec())
    return as_json(k8s.V1DaemonSet(metadata=k8s.V1ObjectMeta(name=name, namespace="kube-system"), spec=spec, status=k8s.V1DaemonSetStatus(
        desired_number_scheduled=desired, number_ready=ready, current_number_scheduled=desired, number_misscheduled=0)))


def test_ip_exhaustion_from_sandbox_events_and_cni_health() -> None:
    message = ("Failed to create pod sandbox: plugin type=\"aws-cni\" failed (add): failed to assign an IP address to "
               "container: AssignPodIPv4Address: no available IP addresses")
    events = [
        event("FailedCreatePodSandBox", message, name="checkout-1", count=4, host="ip-10-0-1-1"),
        event("FailedCreatePodSandBox", "failed to mount volume", name="other"),  # another sandbox failure
        event("FailedCreatePodSandBox", message, name="old", last=NOW - timedelta(hours=2)),  # outside the window
    ]
    daemonsets = [cni("aws-node", 3, 3), cni("calico-node", 3, 0), cni("not-a-cni", 3, 0)]
    finding = summarize_pod_network(daemonsets, events, NOW, WINDOW)
    assert finding.status == "fail"
    assert finding.facts["ip_exhaustion_events"] == 4
    assert finding.facts["ip_exhaustion_nodes"] == {"ip-10-0-1-1": 4}
    assert finding.facts["ip_exhaustion_example"].startswith("default/checkout-1: Failed to create pod sandbox")
    assert finding.facts["failed_daemonsets"] == ["kube-system/calico-node 0/3 ready"]
    assert summarize_pod_network([cni("aws-node", 3, 3)], [], NOW, WINDOW).status == "ok"


def test_ingress_controllers_and_services_without_endpoints() -> None:
    labels = {"app.kubernetes.io/name": "ingress-nginx"}
    controllers = [pod("ingress-nginx-controller-1", "ingress-nginx", ready=False, labels=labels)]
    services = [
        as_json(k8s.V1Service(metadata=k8s.V1ObjectMeta(name="ingress-nginx-controller", namespace="ingress-nginx", labels=labels),
                              spec=k8s.V1ServiceSpec(selector=labels))),
        as_json(k8s.V1Service(metadata=k8s.V1ObjectMeta(name="web", namespace="shop"), spec=k8s.V1ServiceSpec(selector={"app": "web"}))),
        as_json(k8s.V1Service(metadata=k8s.V1ObjectMeta(name="kubernetes", namespace="default"), spec=k8s.V1ServiceSpec())),
    ]
    from kube.checks.networking import ready_services

    ready = ready_services([endpoint_slice(True, service="web", namespace="shop"),
                            endpoint_slice(False, service="ingress-nginx-controller", namespace="ingress-nginx")])
    assert ready == {"shop/web"}
    finding = summarize_ingress(controllers, services, ready)
    assert finding.status == "fail"
    assert finding.facts["controllers_unready"] == ["ingress-nginx/ingress-nginx-controller-1"]
    assert finding.facts["controller_services_without_endpoints"] == ["ingress-nginx/ingress-nginx-controller"]
    assert finding.facts["services"] == 2
    assert all(" in (" in selector and "ingress-nginx" in selector for selector in ingress_selectors())


# -- events --------------------------------------------------------------------------------------------


def test_warning_events_grouped_with_top_offenders_and_crash_backoffs() -> None:
    events = [
        event("BackOff", "Back-off restarting failed container app in pod api-1", name="api-1", count=12),
        event("BackOff", "Back-off pulling image \"x\"", name="img-1", count=3),
        event("FailedScheduling", "0/3 nodes are available", name="batch-1", count=2),
        event("NodeNotReady", "Node n1 status is now: NodeNotReady", kind="Node", name="n1", namespace=""),
        event("BackOff", "Back-off restarting failed container", name="old", last=NOW - timedelta(hours=1), count=50),
    ]
    finding = summarize_events(tally_events(iter(events), NOW, WINDOW))
    facts = finding.facts
    assert finding.status == "warn"
    assert facts["total"] == facts["current_total"] == 18
    assert facts["gone_total"] == 0
    assert facts["by_reason"] == {"BackOff": 15, "FailedScheduling": 2, "NodeNotReady": 1}
    assert facts["by_kind"] == {"Pod": 17, "Node": 1}
    assert facts["top_offenders"][0] == "Pod default/api-1: BackOff ×12"
    assert facts["backoff_objects"] == ["Pod default/api-1 ×12"]
    empty = summarize_events(tally_events(iter([]), NOW, WINDOW))
    assert empty.status == "ok" and empty.facts["total"] == 0


def test_events_about_deleted_objects_are_counted_apart() -> None:
    events = [
        event("FailedScheduling", "0/3 nodes are available: 3 node(s) didn't satisfy NodeAffinity",
              name="aws-node-x1", namespace="kube-system", count=1),
        event("NodeNotReady", "Node n9 status is now: NodeNotReady", kind="Node", name="n9", namespace="", count=2),
        event("BackOff", "Back-off restarting failed container", name="api-1", count=4),
        event("Unhealthy", "Readiness probe failed", kind="Deployment", name="web", count=3),
    ]
    tally = tally_events(iter(events), NOW, WINDOW)
    assert [str(o) for o in tally.objects_by_count()] == [
        "Pod default/api-1", "Deployment default/web", "Node n9", "Pod kube-system/aws-node-x1"]
    deleted = {"aws-node-x1", "n9"}
    looked_up: list[str] = []

    def exists(obj: InvolvedObject) -> bool:
        looked_up.append(obj.name)
        return obj.name not in deleted

    gone = find_gone(tally.objects_by_count(), exists)
    assert "web" not in looked_up  # only kinds that can be looked up (Pods, Nodes)
    finding = summarize_events(tally, gone=gone)
    assert finding.status == "warn"
    assert finding.facts["total"] == 10
    assert finding.facts["gone_total"] == 3 and finding.facts["current_total"] == 7
    assert finding.facts["gone_objects"] == ["Node n9 ×2", "Pod kube-system/aws-node-x1 ×1"]
    assert all("aws-node" not in line and "n9" not in line for line in finding.facts["current_offenders"])
    assert "3 about objects deleted since" in finding.summary


def test_deleted_object_lookups_are_capped_and_the_rest_count_as_current() -> None:
    objects = [InvolvedObject("Pod", "default", f"p{i}") for i in range(40)]
    gone = find_gone(objects, lambda obj: False, limit=25)
    assert len(gone) == 25 and InvolvedObject("Pod", "default", "p30") not in gone


# -- certificates --------------------------------------------------------------------------------------


def certificate(not_after: datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW - timedelta(days=365)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("kubernetes.default")]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_certificate_expiry_thresholds() -> None:
    assert judge_certificate(certificate(NOW + timedelta(days=200)), NOW).status == "ok"
    soon = judge_certificate(certificate(NOW + timedelta(days=20)), NOW)
    assert soon.status == "warn" and soon.facts["days_left"] == 20.0
    assert soon.facts["subject"] == "kube-apiserver" and soon.facts["sans"] == ["kubernetes.default"]
    assert judge_certificate(certificate(NOW + timedelta(days=3)), NOW).status == "fail"
    expired = judge_certificate(certificate(NOW - timedelta(days=1)), NOW)
    assert expired.status == "fail" and "EXPIRED" in expired.summary


def test_the_resolve_validation_runs_the_default_checks_with_deleted_objects_told_apart() -> None:
    from kube.checks import default_checks, resolve_validation_checks
    from kube.checks.events import check_events, check_events_telling_deleted_apart

    regular, resolve = default_checks(), resolve_validation_checks()
    assert [c.name for c in resolve] == [c.name for c in regular]
    assert {c.name: c.run for c in regular}["events"] is check_events
    assert {c.name: c.run for c in resolve}["events"] is check_events_telling_deleted_apart
