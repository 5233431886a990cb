"""Shared pieces of the pod scenarios: labels, waiting for scheduled pods, kubelet-shaped pod status.

The status dicts mirror what a kubelet writes (conditions, containerStatuses), so the bot reads the
same fields it would read on a real cluster. Used by the modules of :mod:`sandbox.scenarios`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubernetes import client as k8s

from sandbox.objects import now, pods_matching, rfc3339, wait_for

SCENARIO_LABEL = "sandbox.k8s-incident-bot/scenario"
"""Label on every object a scenario creates (value: the scenario name)."""


def micro_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def scenario_labels(name: str, app: str) -> dict[str, str]:
    return {"app": app, SCENARIO_LABEL: name}


def scheduled_pods(api: k8s.ApiClient, namespace: str, labels: dict[str, str], count: int, timeout: float) -> list[k8s.V1Pod]:
    def scheduled() -> list[k8s.V1Pod]:
        return [pod for pod in pods_matching(api, namespace, labels) if pod.spec.node_name]

    wait_for(f"{count} pods {labels} scheduled in {namespace}", lambda: len(scheduled()) >= count, timeout)
    return scheduled()


def container_status(spec: k8s.V1Container, *, state: dict[str, Any], restarts: int = 0, last_state: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": spec.name,
        "image": spec.image,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": state,
        "lastState": last_state or {},
    }


def not_ready_conditions(pod: k8s.V1Pod, *, sandbox_ready: bool) -> list[dict[str, str]]:
    moment = rfc3339(now())
    names = ", ".join(c.name for c in pod.spec.containers)
    unready = {"status": "False", "reason": "ContainersNotReady", "message": f"containers with unready status: [{names}]"}
    return [
        {"type": "PodReadyToStartContainers", "status": "True" if sandbox_ready else "False", "lastTransitionTime": moment},
        {"type": "Initialized", "status": "True", "lastTransitionTime": moment},
        {"type": "Ready", "lastTransitionTime": moment, **unready},
        {"type": "ContainersReady", "lastTransitionTime": moment, **unready},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": moment},
    ]
