"""Pod networking and scheduling: Pending pods, pod IP exhaustion, CNI DaemonSets, ingress and Service endpoints.

- ``pending_pods``: pods Pending cluster-wide, filtered by the apiserver (field selector
  ``status.phase=Pending``: of 50,000 pods only the Pending ones travel), grouped by reason; a
  **consistent** read (what is stuck now);
- ``pod_network``: the CNI DaemonSets' readiness (consistent), the kube-system CNI pods that are not
  ready and on which nodes (from the kube-system pod LIST shared with ``kube_system``), and IP exhaustion
  from sandbox-creation events (``FailedCreatePodSandBox`` whose message says the CNI/ipamd has no
  address left) — read from the Warning event LIST the ``events`` check reads anyway (those events are
  Warnings), so no LIST of its own — counting only those whose pod is still Pending (the Pending pod
  LIST shared with ``pending_pods``): once the CNI hands out addresses again, the pods start and their
  old events, kept for an hour, are history;
- ``ingress``: ingress controller pods (label selectors, filtered by the apiserver) and Services whose
  EndpointSlices have no ready endpoint; all consistent reads (readiness now; and a cached read of
  Services, which would do, comes back whole, ignoring ``limit``, and a big cluster has thousands).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from incident.errors import ClusterError
from incident.runbook import (
    CNI_DAEMONSETS,
    INGRESS_CONTROLLER_NAMES,
    INGRESS_LABEL_KEYS,
    IP_EXHAUSTION_MARKERS,
    IP_EXHAUSTION_REASONS,
    THRESHOLDS,
    Thresholds,
)
from kube.checks import (
    CappedNames,
    CheckContext,
    CheckSpec,
    Finding,
    capped,
    condition,
    event_count,
    event_time,
    meta,
    name_of,
    partial,
    pod_ready,
    top,
    workload_of,
)
from kube.checks.events import WARNING_EVENTS
from kube.checks.kube_system import SYSTEM_PODS
from kube.client import ListRequest

PENDING_PODS = ListRequest("/api/v1/pods", field_selector="status.phase=Pending")
DAEMONSETS = ListRequest("/apis/apps/v1/daemonsets")
ENDPOINT_SLICES = ListRequest("/apis/discovery.k8s.io/v1/endpointslices")
SERVICES = ListRequest("/api/v1/services")

# -- pending pods ------------------------------------------------------------------------------------


def pending_reason(pod: Mapping[str, Any]) -> tuple[str, str]:
    """Why a Pending pod waits: (reason, message) from PodScheduled or the containers' waiting state."""
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        return str(scheduled.get("reason") or "Unschedulable"), str(scheduled.get("message") or "")
    status = pod.get("status") or {}
    for item in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (item.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return str(waiting["reason"]), str(waiting.get("message") or "")
    if not (pod.get("spec") or {}).get("nodeName"):
        return "NotScheduled", ""
    return "ContainerCreating", ""


def summarize_pending(pods: Iterable[Mapping[str, Any]], thresholds: Thresholds = THRESHOLDS) -> Finding:
    limit = thresholds.top_offenders
    total = 0
    reasons: Counter[str] = Counter()
    namespaces: Counter[str] = Counter()
    workloads: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for pod in pods:
        total += 1
        reason, message = pending_reason(pod)
        reasons[reason] += 1
        namespace = str(meta(pod).get("namespace", ""))
        namespaces[namespace] += 1
        workloads[f"{namespace}/{workload_of(pod)}"] += 1
        if reason not in examples:
            examples[reason] = f"{name_of(pod)}" + (f": {message[:160]}" if message else "")
    facts = {
        "pending": total, "by_reason": top(reasons, limit), "by_namespace": top(namespaces, limit),
        "by_workload": top(workloads, limit), "examples": list(examples.values())[:limit],
        "container_creating": reasons.get("ContainerCreating", 0),
        "unschedulable": reasons.get("Unschedulable", 0), "unschedulable_example": examples.get("Unschedulable", ""),
    }
    if total == 0:
        return Finding("ok", "no Pending pods", facts)
    summary = f"{total} Pending pod(s): " + ", ".join(f"{reason} {count}" for reason, count in facts["by_reason"].items())
    return Finding("fail" if total >= thresholds.pending_fail else "warn", summary, facts)


def check_pending_pods(ctx: CheckContext) -> Finding:
    pods = ctx.pages(PENDING_PODS)
    return partial(summarize_pending(pods.items(), ctx.thresholds), pods)


# -- pod network: CNI and IP exhaustion --------------------------------------------------------------


def is_ip_exhaustion(event: Mapping[str, Any]) -> bool:
    message = str(event.get("message") or "").lower()
    involved = str((event.get("involvedObject") or {}).get("name") or "")
    if event.get("reason") in IP_EXHAUSTION_REASONS or involved.startswith("aws-node"):
        return any(marker in message for marker in IP_EXHAUSTION_MARKERS)
    return False


def still_waiting(event: Mapping[str, Any], pending: set[tuple[str, str]]) -> bool:
    """Whether a sandbox failure still stands: its pod is still Pending (one that got its address since, or is
    gone, is history); an event about anything but a pod (ipamd's own) always counts."""
    involved = event.get("involvedObject") or {}
    if involved.get("kind") != "Pod":
        return True
    return (str(involved.get("namespace") or ""), str(involved.get("name") or "")) in pending


def cni_pods_not_ready(pods: Iterable[Mapping[str, Any]], thresholds: Thresholds = THRESHOLDS) -> CappedNames:
    """``node (pod)`` of every CNI DaemonSet pod that is not Running and ready (from any pod LIST)."""
    found = CappedNames(thresholds.top_offenders * 2)
    for pod in pods:
        kind, _, owner = workload_of(pod).partition("/")
        if kind != "DaemonSet" or owner not in CNI_DAEMONSETS:
            continue
        if (pod.get("status") or {}).get("phase") != "Running" or not pod_ready(pod):
            found.add(f"{(pod.get('spec') or {}).get('nodeName') or '?'} ({name_of(pod, namespaced=False)})")
    return found


def summarize_pod_network(daemonsets: Iterable[Mapping[str, Any]], events: Iterable[Mapping[str, Any]], now: datetime,
                          window: timedelta, thresholds: Thresholds = THRESHOLDS,
                          cni_not_ready: CappedNames | None = None) -> Finding:
    """``cni_not_ready``: the CNI pods not ready (:func:`cni_pods_not_ready`), when they were read."""
    cni: list[str] = []
    unhealthy: list[str] = []
    failed: list[str] = []
    for ds in daemonsets:
        name = str(meta(ds).get("name", ""))
        if name not in CNI_DAEMONSETS:
            continue
        status = ds.get("status") or {}
        desired, ready = int(status.get("desiredNumberScheduled") or 0), int(status.get("numberReady") or 0)
        label = f"{name_of(ds)} {ready}/{desired} ready"
        cni.append(label)
        if desired > 0 and ready == 0:
            failed.append(label)
        elif ready < desired:
            unhealthy.append(label)
    exhausted = 0
    nodes: Counter[str] = Counter()
    example = ""
    for event in events:
        moment = event_time(event)
        if moment is not None and now - moment > window:
            continue
        if not is_ip_exhaustion(event):
            continue
        count = event_count(event)
        exhausted += count
        host = (event.get("source") or {}).get("host") or event.get("reportingInstance") or "?"
        nodes[str(host)] += count
        example = example or f"{name_of({'metadata': event.get('involvedObject') or {}})}: {str(event.get('message'))[:160]}"
    facts = {
        "cni": cni, "unhealthy_daemonsets": unhealthy + failed, "failed_daemonsets": failed,
        "ip_exhaustion_events": exhausted, "ip_exhaustion_example": example,
        "ip_exhaustion_nodes": top(nodes, thresholds.top_offenders),
    }
    if cni_not_ready is not None:
        facts["cni_pods_not_ready"] = len(cni_not_ready)
        facts["cni_pods_not_ready_names"] = cni_not_ready.facts()
    cni_text = ", ".join(cni) if cni else "no known CNI DaemonSet found"
    if exhausted or failed:
        parts = []
        if exhausted:
            parts.append(f"{exhausted} pod sandbox failure(s) for lack of pod IPs")
        if failed:
            parts.append("CNI down: " + ", ".join(failed))
        return Finding("fail", "; ".join(parts) + f" (CNI: {cni_text})", facts)
    if unhealthy:
        where = f" (not ready on: {', '.join(cni_not_ready.first(3))})" if cni_not_ready else ""
        return Finding("warn", f"CNI not fully ready: {', '.join(unhealthy)}{where}", facts)
    return Finding("ok", f"CNI: {cni_text}; no IP exhaustion events", facts)


def check_pod_network(ctx: CheckContext) -> Finding:
    events, pods = ctx.pages(WARNING_EVENTS), ctx.pages(SYSTEM_PODS)
    daemonsets_stream = ctx.pages(DAEMONSETS).start()
    # Both shared LISTs are read side by side: this thread takes the events, a helper the pods.
    not_ready: list[CappedNames] = []

    def count_cni_pods() -> None:
        try:
            not_ready.append(cni_pods_not_ready(pods.items(), ctx.thresholds))
        except ClusterError:
            pass  # a cross-check only: left out (the DaemonSets' own counts still stand)

    pending_stream = ctx.pages(PENDING_PODS)
    pending: list[set[tuple[str, str]]] = []

    def read_pending() -> None:
        try:
            pending.append({(str(meta(pod).get("namespace", "")), str(meta(pod).get("name", "")))
                            for pod in pending_stream.items()})
        except ClusterError:
            pass  # a filter only: without it every exhaustion event counts (the cautious side)

    helper = threading.Thread(target=count_cni_pods, name="pod-network-cni-pods", daemon=True)
    helper.start()
    pending_reader = threading.Thread(target=read_pending, name="pod-network-pending-pods", daemon=True)
    pending_reader.start()
    exhaustion = [event for event in events.items() if is_ip_exhaustion(event)]  # a few: only the matching ones stay
    daemonsets = list(daemonsets_stream.items())
    helper.join(max(0.0, (pods.stop_at or time.monotonic() + 30) - time.monotonic() + 0.5))
    pending_reader.join(max(0.0, (pending_stream.stop_at or time.monotonic() + 30) - time.monotonic() + 0.5))
    if pending and pending_stream.complete:
        exhaustion = [event for event in exhaustion if still_waiting(event, pending[0])]
    now = events.snapshot_time or ctx.kube.server_time or ctx.wall_clock()
    cni_not_ready = not_ready[0] if not_ready and pods.complete else None  # a cross-check: left out if unfinished
    finding = summarize_pod_network(daemonsets, exhaustion, now, ctx.event_window, ctx.thresholds, cni_not_ready)
    return partial(finding, daemonsets_stream, events)


# -- ingress and Service endpoints -------------------------------------------------------------------


def ingress_selectors() -> list[str]:
    """One set-based label selector per label key, covering every known ingress controller."""
    names = ",".join(INGRESS_CONTROLLER_NAMES)
    return [f"{key} in ({names})" for key in INGRESS_LABEL_KEYS]


def _is_controller(obj: Mapping[str, Any]) -> bool:
    labels = meta(obj).get("labels") or {}
    return any(labels.get(key) in INGRESS_CONTROLLER_NAMES for key in INGRESS_LABEL_KEYS)


def ready_services(slices: Iterable[Mapping[str, Any]]) -> set[str]:
    """``namespace/service`` of every Service with at least one ready endpoint."""
    ready: set[str] = set()
    for item in slices:
        service = (meta(item).get("labels") or {}).get("kubernetes.io/service-name")
        if not service:
            continue
        if any((e.get("conditions") or {}).get("ready", True) is not False for e in item.get("endpoints") or ()):
            ready.add(f"{meta(item).get('namespace')}/{service}")
    return ready


def summarize_ingress(controller_pods: Iterable[Mapping[str, Any]], services: Iterable[Mapping[str, Any]],
                      ready: set[str], thresholds: Thresholds = THRESHOLDS) -> Finding:
    limit = thresholds.top_offenders * 2
    seen: set[str] = set()
    controllers: list[str] = []
    unready: list[str] = []
    for pod in controller_pods:
        name = name_of(pod)
        if name in seen or (pod.get("status") or {}).get("phase") == "Succeeded":
            continue
        seen.add(name)
        controllers.append(name)
        if not pod_ready(pod):
            unready.append(name)
    total = 0
    empty: list[str] = []
    controller_empty: list[str] = []
    for service in services:
        spec = service.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            continue  # endpoints managed by hand, or none by design
        total += 1
        name = name_of(service)
        if name not in ready:
            empty.append(name)
            if _is_controller(service):
                controller_empty.append(name)
    facts = {
        "controllers": len(controllers), "controllers_unready": capped(sorted(unready), limit),
        "services": total, "services_without_endpoints": capped(sorted(empty), limit),
        "services_without_endpoints_count": len(empty),
        "controller_services_without_endpoints": capped(sorted(controller_empty), limit),
    }
    parts = [f"{len(controllers)} ingress controller pod(s)" + (f", {len(unready)} not ready" if unready else ""),
             f"{len(empty)} of {total} Service(s) without ready endpoints"]
    summary = "; ".join(parts)
    if (controllers and len(unready) == len(controllers)) or controller_empty:
        return Finding("fail", summary, facts)
    if unready or empty:
        return Finding("warn", summary, facts)
    return Finding("ok", summary, facts)


def check_ingress(ctx: CheckContext) -> Finding:
    streams = [ctx.pages(ListRequest("/api/v1/pods", label_selector=selector)).start() for selector in ingress_selectors()]
    slices, services = ctx.pages(ENDPOINT_SLICES).start(), ctx.pages(SERVICES).start()
    pods = [pod for stream in streams for pod in stream.items()]  # only ingress controller pods: a few
    ready = ready_services(slices.items())
    finding = summarize_ingress(pods, services.items(), ready, ctx.thresholds)
    return partial(finding, *streams, slices, services)


CHECKS = (
    CheckSpec("pending_pods", "Pending pods", check_pending_pods, timeout_s=30.0, shared=(PENDING_PODS,)),
    CheckSpec("pod_network", "Pod network (CNI, IPs)", check_pod_network, timeout_s=30.0,
              shared=(WARNING_EVENTS, SYSTEM_PODS, PENDING_PODS)),
    CheckSpec("ingress", "Ingress and Service endpoints", check_ingress, timeout_s=30.0),
)
