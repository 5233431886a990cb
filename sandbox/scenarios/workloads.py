"""Workload scenarios: pod IP exhaustion (AWS VPC CNI), CoreDNS outage, a PodDisruptionBudget that blocks evictions."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import ClassVar

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from sandbox.baseline import (
    AWS_NODE,
    COREDNS,
    COREDNS_LABELS,
    KUBE_DNS_SERVICE,
    SYSTEM_NAMESPACE,
    install_aws_node,
    install_coredns,
)
from sandbox.objects import (
    MERGE_PATCH,
    Handle,
    PodTakeover,
    container,
    delete_events,
    deployment,
    force_delete_pods,
    ignore_not_found,
    now,
    pod_ready,
    pod_template,
    pods_matching,
    ready_endpoint_count,
    record_event,
    rfc3339,
    wait_for,
)
from sandbox.scenarios.pod_status import SCENARIO_LABEL, container_status, not_ready_conditions, scenario_labels, scheduled_pods


def ip_exhaustion_message() -> str:
    """What the kubelet reports when the AWS VPC CNI (ipamd) has no free address for a pod."""
    sandbox = secrets.token_hex(32)
    return (
        f'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "{sandbox}": '
        'plugin type="aws-cni" name="aws-cni" failed (add): add cmd: failed to assign an IP address to container: '
        "rpc error: code = Unknown desc = AssignPodIPv4Address: no available IP addresses"
    )


IPAMD_POLL_S = 0.5
"""How often the exhausted "ipamd" looks whether ``aws-node`` was restarted (then the stuck pods get addresses)."""


@dataclass
class PodIpExhaustion:
    """The subnet is out of IPs: ``aws-node`` runs, but new pods of a Deployment never get a sandbox.

    The exhaustion lives in ipamd's view of the subnet: restarting ``aws-node`` (the runbook's step, a new
    generation of the DaemonSet) makes it re-read the free addresses, and the stuck pods start (given back
    to kwok), as on a real cluster.
    """

    namespace: str = "default"
    deployment: str = "checkout"
    replicas: int = 3
    image: str = "registry.k8s.io/e2e-test-images/agnhost:2.53"
    timeout: float = 60.0
    name: ClassVar[str] = "pod-ip-exhaustion"

    def apply(self, api: k8s.ApiClient) -> Handle:
        apps = k8s.AppsV1Api(api)
        labels = scenario_labels(self.name, self.deployment)
        handle = Handle(self.name, f"{self.replicas} pods of {self.namespace}/{self.deployment} cannot get a pod IP", {"pods": [], "events": []})
        if install_aws_node(api, self.timeout):
            handle.on_undo("delete aws-node", lambda: ignore_not_found(lambda: apps.delete_namespaced_daemon_set(AWS_NODE, SYSTEM_NAMESPACE)))
        template = pod_template(labels, [container("app", self.image, [("http", 8080, "TCP")])])
        apps.create_namespaced_deployment(self.namespace, deployment(self.deployment, self.namespace, self.replicas, template))
        handle.on_undo(f"delete deployment {self.deployment}", lambda: self._delete(api, labels))
        takeover = PodTakeover(api)
        generation = int(apps.read_namespaced_daemon_set(AWS_NODE, SYSTEM_NAMESPACE).metadata.generation or 0)
        for pod in scheduled_pods(api, self.namespace, labels, self.replicas, self.timeout):
            takeover.take(pod)
            status = {
                "phase": "Pending",
                "conditions": not_ready_conditions(pod, sandbox_ready=False),
                "containerStatuses": [container_status(c, state={"waiting": {"reason": "ContainerCreating"}}) for c in pod.spec.containers],
                "startTime": rfc3339(now()),
                "podIP": None, "podIPs": None,  # kwok may have given it one before it was taken: no sandbox, no IP
            }
            k8s.CoreV1Api(api).patch_namespaced_pod_status(pod.metadata.name, self.namespace, {"status": status}, _content_type=MERGE_PATCH)
            handle.details["events"].append(record_event(api, pod, reason="FailedCreatePodSandBox", message=ip_exhaustion_message()))
            handle.details["pods"].append(pod.metadata.name)
        handle.on_undo("delete FailedCreatePodSandBox events", lambda: delete_events(api, self.namespace, handle.details["events"]))
        stop = threading.Event()
        watcher = threading.Thread(target=self._ipamd, args=(api, takeover, generation, stop), name="ipamd", daemon=True)
        handle.on_undo("give the stuck pods back to kwok", lambda: (stop.set(), watcher.join(10), takeover.release_all()))
        watcher.start()
        return handle

    def _ipamd(self, api: k8s.ApiClient, takeover: PodTakeover, generation: int, stop: threading.Event) -> None:
        """Until ``aws-node`` is restarted (its generation moves on); then the stuck pods get their addresses."""
        apps = k8s.AppsV1Api(api)
        while not stop.wait(IPAMD_POLL_S):
            try:
                if int(apps.read_namespaced_daemon_set(AWS_NODE, SYSTEM_NAMESPACE).metadata.generation or 0) > generation:
                    takeover.release_all()
                    return
            except (ApiException, OSError):
                continue  # the apiserver may be down in a combined scenario; look again

    def _delete(self, api: k8s.ApiClient, labels: dict[str, str]) -> None:
        ignore_not_found(lambda: k8s.AppsV1Api(api).delete_namespaced_deployment(self.deployment, self.namespace))
        wait_for("the ReplicaSet to be garbage-collected", lambda: not k8s.AppsV1Api(api).list_namespaced_replica_set(
            self.namespace, label_selector=f"{SCENARIO_LABEL}={self.name},app={self.deployment}").items, self.timeout)
        force_delete_pods(api, self.namespace, labels)


@dataclass
class DnsOutage:
    """CoreDNS pods stay but fail readiness: 0 ready replicas, ``kube-dns`` has no ready endpoints."""

    timeout: float = 60.0
    name: ClassVar[str] = "dns-outage"

    def apply(self, api: k8s.ApiClient) -> Handle:
        core = k8s.CoreV1Api(api)
        handle = Handle(self.name, "CoreDNS has no ready replicas; kube-dns has no ready endpoints", {"pods": [], "events": []})
        install_coredns(api, timeout=self.timeout)
        takeover = PodTakeover(api)
        handle.on_undo("give CoreDNS pods back to kwok", lambda: self._restore(api, takeover))
        handle.on_undo("stop removing replaced CoreDNS pods", takeover.reap_in_background())  # a restart heals it
        for pod in pods_matching(api, SYSTEM_NAMESPACE, COREDNS_LABELS):
            takeover.take(pod)
            moment = rfc3339(now())
            status = {
                "phase": "Running",
                "conditions": not_ready_conditions(pod, sandbox_ready=True),
                "containerStatuses": [
                    container_status(c, state={"running": {"startedAt": moment}}) | {"started": True} for c in pod.spec.containers
                ],
            }
            core.patch_namespaced_pod_status(pod.metadata.name, SYSTEM_NAMESPACE, {"status": status}, _content_type=MERGE_PATCH)
            message = "Readiness probe failed: HTTP probe failed with statuscode: 503"
            handle.details["events"].append(record_event(api, pod, reason="Unhealthy", message=message))
            handle.details["pods"].append(pod.metadata.name)
        handle.on_undo("delete Unhealthy events", lambda: delete_events(api, SYSTEM_NAMESPACE, handle.details["events"]))
        wait_for("kube-dns without ready endpoints", lambda: ready_endpoint_count(api, SYSTEM_NAMESPACE, KUBE_DNS_SERVICE) == 0, self.timeout)
        wait_for(
            "CoreDNS with 0 ready replicas",
            lambda: not k8s.AppsV1Api(api).read_namespaced_deployment(COREDNS, SYSTEM_NAMESPACE).status.ready_replicas,
            self.timeout,
        )
        return handle

    def _restore(self, api: k8s.ApiClient, takeover: PodTakeover) -> None:
        takeover.release_all()
        wait_for("CoreDNS ready again", lambda: ready_endpoint_count(api, SYSTEM_NAMESPACE, KUBE_DNS_SERVICE) > 0, self.timeout)


@dataclass
class BlockingPdb:
    """A Deployment whose PodDisruptionBudget allows no disruption: every eviction gets 429."""

    namespace: str = "default"
    deployment: str = "payments"
    replicas: int = 2
    image: str = "registry.k8s.io/e2e-test-images/agnhost:2.53"
    timeout: float = 60.0
    name: ClassVar[str] = "blocking-pdb"

    def apply(self, api: k8s.ApiClient) -> Handle:
        apps, policy = k8s.AppsV1Api(api), k8s.PolicyV1Api(api)
        labels = scenario_labels(self.name, self.deployment)
        handle = Handle(self.name, f"PDB {self.namespace}/{self.deployment} allows 0 disruptions", {"pdb": self.deployment})
        template = pod_template(labels, [container("app", self.image, [("http", 8080, "TCP")])])
        apps.create_namespaced_deployment(self.namespace, deployment(self.deployment, self.namespace, self.replicas, template))
        handle.on_undo(f"delete deployment {self.deployment}", lambda: self._delete_deployment(api, labels))
        pdb = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": self.deployment, "namespace": self.namespace},
            "spec": {"minAvailable": self.replicas, "selector": {"matchLabels": labels}},
        }
        policy.create_namespaced_pod_disruption_budget(self.namespace, pdb)
        handle.on_undo(f"delete PDB {self.deployment}", lambda: ignore_not_found(
            lambda: policy.delete_namespaced_pod_disruption_budget(self.deployment, self.namespace)))
        wait_for(f"{self.replicas} ready pods of {self.deployment}",
                 lambda: sum(pod_ready(p) for p in pods_matching(api, self.namespace, labels)) >= self.replicas, self.timeout)
        wait_for("the disruption controller to compute the PDB", lambda: self._blocking(policy), self.timeout)
        handle.details["pods"] = [p.metadata.name for p in pods_matching(api, self.namespace, labels)]
        return handle

    def _blocking(self, policy: k8s.PolicyV1Api) -> bool:
        pdb = policy.read_namespaced_pod_disruption_budget(self.deployment, self.namespace)
        status = pdb.status
        return (
            status is not None
            and (status.observed_generation or 0) >= pdb.metadata.generation
            and status.current_healthy >= self.replicas
            and status.disruptions_allowed == 0
        )

    def _delete_deployment(self, api: k8s.ApiClient, labels: dict[str, str]) -> None:
        ignore_not_found(lambda: k8s.AppsV1Api(api).delete_namespaced_deployment(self.deployment, self.namespace))
        wait_for(f"pods of {self.deployment} gone", lambda: not pods_matching(api, self.namespace, labels), self.timeout)
