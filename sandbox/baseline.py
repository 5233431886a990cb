"""What a healthy EKS-like cluster has in ``kube-system``: CoreDNS behind ``kube-dns`` and the ``aws-node`` CNI.

:func:`install_baseline` creates them (idempotently) and waits until CoreDNS has ready replicas and the
``kube-dns`` Service has ready endpoints, so a "healthy cluster" assessment really sees a healthy cluster.
kwok runs the pods; the kube-controller-manager fills the EndpointSlices. Used by the cluster fixture,
``python -m sandbox.cluster start`` and the DNS and IP-exhaustion scenarios.
"""

from __future__ import annotations

from kubernetes import client as k8s

from sandbox.objects import (
    Manifest,
    container,
    daemonset,
    deployment,
    ensure,
    pod_template,
    ready_endpoint_count,
    wait_for,
)

SYSTEM_NAMESPACE = "kube-system"
COREDNS = "coredns"
COREDNS_LABELS = {"k8s-app": "kube-dns"}
KUBE_DNS_SERVICE = "kube-dns"
KUBE_DNS_IP = "10.0.0.10"
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.12.1"
AWS_NODE = "aws-node"
AWS_NODE_LABELS = {"k8s-app": "aws-node"}
AWS_NODE_IMAGE = "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.2-eksbuild.1"

COREFILE = """.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
"""


def coredns_deployment(replicas: int = 2) -> Manifest:
    template = pod_template(
        COREDNS_LABELS,
        [container("coredns", COREDNS_IMAGE, [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")])],
        priorityClassName="system-cluster-critical",
        tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists"}],
    )
    manifest = deployment(COREDNS, SYSTEM_NAMESPACE, replicas, template, labels={**COREDNS_LABELS, "eks.amazonaws.com/component": "coredns"})
    return manifest


def kube_dns_service() -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": KUBE_DNS_SERVICE, "namespace": SYSTEM_NAMESPACE, "labels": dict(COREDNS_LABELS)},
        "spec": {
            "selector": dict(COREDNS_LABELS),
            "clusterIP": KUBE_DNS_IP,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }


def aws_node_daemonset() -> Manifest:
    template = pod_template(
        AWS_NODE_LABELS,
        [container("aws-node", AWS_NODE_IMAGE, [("metrics", 61678, "TCP")])],
        hostNetwork=True,
        priorityClassName="system-node-critical",
        tolerations=[{"operator": "Exists"}],
    )
    return daemonset(AWS_NODE, SYSTEM_NAMESPACE, template)


def coredns_healthy(api: k8s.ApiClient, replicas: int = 1) -> bool:
    """At least ``replicas`` CoreDNS pods ready and as many ready ``kube-dns`` endpoints."""
    status = k8s.AppsV1Api(api).read_namespaced_deployment(COREDNS, SYSTEM_NAMESPACE).status
    return (status.ready_replicas or 0) >= replicas and ready_endpoint_count(api, SYSTEM_NAMESPACE, KUBE_DNS_SERVICE) >= replicas


def aws_node_ready(api: k8s.ApiClient) -> bool:
    status = k8s.AppsV1Api(api).read_namespaced_daemon_set(AWS_NODE, SYSTEM_NAMESPACE).status
    return status.desired_number_scheduled > 0 and status.number_ready == status.desired_number_scheduled


def install_coredns(api: k8s.ApiClient, replicas: int = 2, timeout: float = 60.0) -> bool:
    """Create CoreDNS (ConfigMap, Deployment, kube-dns Service) if missing and wait until it serves.

    Returns whether anything was created.
    """
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": COREDNS, "namespace": SYSTEM_NAMESPACE}, "data": {"Corefile": COREFILE}}
    created = ensure(
        lambda: core.read_namespaced_config_map(COREDNS, SYSTEM_NAMESPACE),
        lambda: core.create_namespaced_config_map(SYSTEM_NAMESPACE, config),
    )
    created |= ensure(
        lambda: apps.read_namespaced_deployment(COREDNS, SYSTEM_NAMESPACE),
        lambda: apps.create_namespaced_deployment(SYSTEM_NAMESPACE, coredns_deployment(replicas)),
    )
    created |= ensure(
        lambda: core.read_namespaced_service(KUBE_DNS_SERVICE, SYSTEM_NAMESPACE),
        lambda: core.create_namespaced_service(SYSTEM_NAMESPACE, kube_dns_service()),
    )
    wait_for("CoreDNS ready with kube-dns endpoints", lambda: coredns_healthy(api, replicas), timeout)
    return created


def install_aws_node(api: k8s.ApiClient, timeout: float = 60.0) -> bool:
    """Create the ``aws-node`` DaemonSet if missing and wait until it runs on every node."""
    apps = k8s.AppsV1Api(api)
    created = ensure(
        lambda: apps.read_namespaced_daemon_set(AWS_NODE, SYSTEM_NAMESPACE),
        lambda: apps.create_namespaced_daemon_set(SYSTEM_NAMESPACE, aws_node_daemonset()),
    )
    wait_for("aws-node DaemonSet ready on every node", lambda: aws_node_ready(api), timeout)
    return created


def install_baseline(api: k8s.ApiClient, *, aws_node: bool = True, timeout: float = 60.0) -> None:
    """Make the cluster look like a healthy EKS cluster: CoreDNS + kube-dns, and ``aws-node`` if asked."""
    install_coredns(api, timeout=timeout)
    if aws_node:
        install_aws_node(api, timeout=timeout)
