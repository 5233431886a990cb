"""Cluster DNS: CoreDNS/kube-dns Deployment availability and ready endpoints behind the ``kube-dns`` Service.

Reads the kube-system Deployments (a handful) and the ``kube-dns`` EndpointSlices (label
``kubernetes.io/service-name=kube-dns``); 0 ready replicas or 0 ready endpoints is the start of a DNS cascade.
Both are written by kube-controller-manager, so the CoreDNS pods themselves (their Ready condition comes
from the kubelets) are counted too, from the kube-system pod LIST shared with ``kube_system``; they are
reported beside the verdict's facts (``pods_ready``/``pods_total``), as a cross-check when the
controllers lag. All three are **consistent** reads (DNS readiness is about now).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from incident.errors import ClusterError
from incident.runbook import DNS_DEPLOYMENTS, DNS_LABEL_SELECTOR, DNS_SERVICE, SYSTEM_NAMESPACE
from kube.checks import CheckContext, CheckSpec, Finding, meta, name_of, partial, pod_ready
from kube.checks.kube_system import SYSTEM_PODS
from kube.client import ListRequest

DNS_DEPLOYMENT_LIST = ListRequest(f"/apis/apps/v1/namespaces/{SYSTEM_NAMESPACE}/deployments")
DNS_SLICES = ListRequest(f"/apis/discovery.k8s.io/v1/namespaces/{SYSTEM_NAMESPACE}/endpointslices",
                         label_selector=f"kubernetes.io/service-name={DNS_SERVICE}")


def is_dns_deployment(deployment: Mapping[str, Any]) -> bool:
    labels = meta(deployment).get("labels") or {}
    key, _, value = DNS_LABEL_SELECTOR.partition("=")
    return meta(deployment).get("name") in DNS_DEPLOYMENTS or labels.get(key) == value


def count_endpoints(slices: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(ready, total) endpoints of EndpointSlices; a missing ``ready`` condition counts as ready (API rule)."""
    ready = total = 0
    for item in slices:
        for endpoint in item.get("endpoints") or ():
            total += 1
            if (endpoint.get("conditions") or {}).get("ready", True) is not False:
                ready += 1
    return ready, total


def is_dns_pod(pod: Mapping[str, Any]) -> bool:
    key, _, value = DNS_LABEL_SELECTOR.partition("=")
    return (meta(pod).get("labels") or {}).get(key) == value


def count_dns_pods(pods: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(ready, total) CoreDNS/kube-dns pods among ``pods`` (the kube-system pod LIST, any size)."""
    ready = total = 0
    for pod in pods:
        if is_dns_pod(pod) and (pod.get("status") or {}).get("phase") != "Succeeded":
            total += 1
            ready += pod_ready(pod)
    return ready, total


def summarize_dns(deployments: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
                  pods: tuple[int, int] | None = None) -> Finding:
    """``pods`` is (ready, total) DNS pods when they were counted (:func:`count_dns_pods`)."""
    found = []
    for deployment in deployments:
        if not is_dns_deployment(deployment):
            continue
        status = deployment.get("status") or {}
        desired = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
        found.append({"name": name_of(deployment, namespaced=False), "desired": desired,
                      "ready": int(status.get("readyReplicas") or 0), "available": int(status.get("availableReplicas") or 0)})
    ready_endpoints, total_endpoints = count_endpoints(slices)
    detail = ", ".join(f"{d['name']} {d['ready']}/{d['desired']} ready" for d in found) or "no DNS Deployment found"
    facts: dict[str, Any] = {
        "deployments": found, "deployments_detail": detail,
        "ready_endpoints": ready_endpoints, "total_endpoints": total_endpoints,
        "endpoints_detail": f"{ready_endpoints} of {total_endpoints} endpoint(s) ready",
        "ready_endpoints_zero": ready_endpoints == 0,
    }
    if pods is not None:
        facts["pods_ready"], facts["pods_total"] = pods
    if found:
        facts["ready_replicas_zero"] = all(d["ready"] == 0 for d in found if d["desired"] > 0) and any(d["desired"] > 0 for d in found)
        facts["degraded"] = not facts["ready_replicas_zero"] and ready_endpoints > 0 and (
            any(d["ready"] < d["desired"] for d in found) or ready_endpoints < total_endpoints)
    else:
        facts["ready_replicas_zero"] = None
        facts["degraded"] = False
    summary = f"{detail}; {DNS_SERVICE}: {facts['endpoints_detail']}"
    if pods is not None:
        summary += f"; pods {pods[0]}/{pods[1]} ready"
    if not found and total_endpoints == 0:
        facts["ready_endpoints_zero"] = None  # no cluster DNS installed here: nothing to judge
        return Finding("warn", f"no CoreDNS/kube-dns Deployment and no {DNS_SERVICE} endpoints in {SYSTEM_NAMESPACE}", facts)
    if facts["ready_endpoints_zero"] or facts["ready_replicas_zero"]:
        return Finding("fail", summary, facts)
    if facts["degraded"]:
        return Finding("warn", summary, facts)
    return Finding("ok", summary, facts)


def check_dns(ctx: CheckContext) -> Finding:
    pods = ctx.pages(SYSTEM_PODS)
    deployments, slices = ctx.pages(DNS_DEPLOYMENT_LIST).start(), ctx.pages(DNS_SLICES).start()
    try:
        counted: tuple[int, int] | None = count_dns_pods(pods.items())
    except ClusterError:
        counted = None  # a cross-check only: the Deployments and EndpointSlices still decide
    finding = summarize_dns(list(deployments.items()), list(slices.items()), counted if pods.complete else None)
    return partial(finding, deployments, slices)  # the pod count is a cross-check: left out when it did not finish


CHECKS = (CheckSpec("dns", "Cluster DNS", check_dns, timeout_s=20.0, shared=(SYSTEM_PODS,)),)
