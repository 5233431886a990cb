"""Cluster DNS: CoreDNS/kube-dns Deployment availability and ready endpoints behind the ``kube-dns`` Service.

Reads the kube-system Deployments (a handful) and the ``kube-dns`` EndpointSlices (label
``kubernetes.io/service-name=kube-dns``); 0 ready replicas or 0 ready endpoints is the start of a DNS cascade.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from incident.runbook import DNS_DEPLOYMENTS, DNS_LABEL_SELECTOR, DNS_SERVICE, SYSTEM_NAMESPACE
from kube.checks import CheckContext, CheckSpec, Finding, meta, name_of


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


def summarize_dns(deployments: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]]) -> Finding:
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
    if found:
        facts["ready_replicas_zero"] = all(d["ready"] == 0 for d in found if d["desired"] > 0) and any(d["desired"] > 0 for d in found)
        facts["degraded"] = not facts["ready_replicas_zero"] and ready_endpoints > 0 and (
            any(d["ready"] < d["desired"] for d in found) or ready_endpoints < total_endpoints)
    else:
        facts["ready_replicas_zero"] = None
        facts["degraded"] = False
    summary = f"{detail}; {DNS_SERVICE}: {facts['endpoints_detail']}"
    if not found and total_endpoints == 0:
        facts["ready_endpoints_zero"] = None  # no cluster DNS installed here: nothing to judge
        return Finding("warn", f"no CoreDNS/kube-dns Deployment and no {DNS_SERVICE} endpoints in {SYSTEM_NAMESPACE}", facts)
    if facts["ready_endpoints_zero"] or facts["ready_replicas_zero"]:
        return Finding("fail", summary, facts)
    if facts["degraded"]:
        return Finding("warn", summary, facts)
    return Finding("ok", summary, facts)


def check_dns(ctx: CheckContext) -> Finding:
    deployments = ctx.kube.list_items(f"/apis/apps/v1/namespaces/{SYSTEM_NAMESPACE}/deployments")
    slices = ctx.kube.list_items(f"/apis/discovery.k8s.io/v1/namespaces/{SYSTEM_NAMESPACE}/endpointslices",
                                 label_selector=f"kubernetes.io/service-name={DNS_SERVICE}")
    return summarize_dns(list(deployments), slices)


CHECKS = (CheckSpec("dns", "Cluster DNS", check_dns, timeout_s=20.0),)
