"""Node isolation and restore (service layer): a deleted node's labels and taints, its return, the rebalance.

The runbook isolates a node whose server is gone by deleting the node object; after the repair the node
registers again, without the labels people gave it (``node-role.kubernetes.io/…``, pools, zones) or the
taints that kept workloads apart, so the scheduler does not use it as before. This module closes that loop:

1. :func:`node_deleted` (called by the drainer when ``delete node`` succeeded): the labels and taints the
   executor read just before the delete are kept per incident and node (:meth:`Keys.node_restore`), and a
   watch starts (:data:`service.jobs.NODE_WATCH`, every :data:`WATCH_INTERVAL_S`, for
   ``NODE_RETURN_WATCH_MINUTES``).
2. :func:`watch` (the job): when a node of that name — or the replacement the operator names,
   :func:`name_replacement` (``/k8s replaced node <old> by <new>``) — registers, the incident is told, with a
   *Re-apply labels and taints* button (``service.recovery.click_restore``: the ``restore node`` action,
   dry-run and confirmed like any other; the taints of the node lifecycle controller are not re-applied).
3. :func:`restored` (when ``restore node`` succeeded): the rebalance check runs once after
   ``NODE_REBALANCE_WINDOW_SECONDS`` (:func:`check_rebalance`): the node Ready, schedulable (else how to
   uncordon), and how many pods landed on it since its labels came back.

The watch and the rebalance check are cluster-bound jobs (:data:`service.jobs.NODE_WATCH`, ``on_cluster``): they
wait in the deleted node's cluster's queue, so an agent cluster's agent runs them (nothing outside that cluster
connects to its apiserver) and tells the incident through the outbox (``slack`` is then the agent's
:class:`service.cluster_jobs.OutboxNotifier`); a central cluster's run on the central workers, through Slack.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from redis import Redis

from chat import recovery_blocks
from incident.actions import ActionRequest
from incident.errors import CommandError, ObjectNotFound
from incident.recovery import restore_params
from incident.settings import Settings
from incident.templates import renderer_for
from kube.client import KubeApi
from persistence.connection import get_keys
from service import jobs
from service.runtime import Notifier

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 10
"""How often the watch looks for the node (one GET of one node)."""
RECORD_TTL_SECONDS = 30 * 24 * 3600


def _fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in raw.items()}


def record_of(redis: Redis, settings: Settings, incident_id: str, node: str) -> dict[str, Any] | None:
    """The kept labels and taints of a node deleted in the incident (``None``: the bot deleted no such node)."""
    raw = _fields(redis.hgetall(get_keys(settings).node_restore(incident_id, node)))
    if not raw:
        return None
    return {**raw, "labels": json.loads(raw.get("labels") or "{}"), "taints": json.loads(raw.get("taints") or "[]")}


def restore_request_params(record: dict[str, Any]) -> dict[str, Any]:
    """The ``restore node`` parameters of a record (:func:`incident.recovery.restore_params`)."""
    return restore_params(record["labels"], record["taints"])


def node_deleted(settings: Settings, redis: Redis, request: ActionRequest, before: dict[str, Any] | None) -> None:
    """Keep what the deleted node had and start watching for its return (nothing outside an incident)."""
    if not request.incident_id or not before:
        return
    key = get_keys(settings).node_restore(request.incident_id, request.target)
    with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"node": request.target, "channel": request.channel_id, "action_id": request.id,
                                "cluster": request.cluster,
                                "labels": json.dumps(before.get("labels") or {}, sort_keys=True),
                                "taints": json.dumps(before.get("taints") or []), "deleted_at": repr(time.time())})
        pipe.expire(key, RECORD_TTL_SECONDS)
        pipe.execute()
    deadline = time.time() + settings.node_return_watch_minutes * 60
    jobs.enqueue_in(settings, jobs.NODE_WATCH, timedelta(seconds=WATCH_INTERVAL_S), request.incident_id,
                    request.target, deadline, redis=redis, description=f"watch for node {request.target} to return",
                    on_cluster=request.cluster, cluster=request.cluster)


def _read_node(settings: Settings, node: str) -> dict[str, Any] | None:
    kube = KubeApi.from_settings(settings)
    try:
        return kube.get_json(f"/api/v1/nodes/{node}")
    except ObjectNotFound:
        return None
    finally:
        kube.close()


def name_replacement(settings: Settings, redis: Redis, incident_id: str, old: str, new: str) -> None:
    """The operator names the node replacing a deleted one: the watch looks for ``new`` and offers ``old``'s
    labels and taints when it registers (a fresh watch if the first one ended)."""
    key = get_keys(settings).node_restore(incident_id, old)
    if record_of(redis, settings, incident_id, old) is None:
        raise CommandError(renderer_for(settings.templates_dir).render("node_replacement_unknown.slack.j2", old=old))
    with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, "replacement", new)
        pipe.hdel(key, "returned_at")
        pipe.execute()
    deadline = time.time() + settings.node_return_watch_minutes * 60
    cluster = (record_of(redis, settings, incident_id, old) or {}).get("cluster")
    jobs.enqueue(settings, jobs.NODE_WATCH, incident_id, old, deadline, redis=redis,
                 description=f"watch for node {new}, replacing {old}", on_cluster=cluster, cluster=cluster)


def watch(settings: Settings, redis: Redis, slack: Notifier, incident_id: str, node: str, deadline: float) -> str:
    """One look for the deleted node (or its named replacement): ``returned`` (told, once), ``waiting`` (looked
    again later), ``gave up`` or ``done`` (told already)."""
    key = get_keys(settings).node_restore(incident_id, node)
    record = record_of(redis, settings, incident_id, node)
    if record is None or record.get("returned_at"):
        return "done"
    target = str(record.get("replacement") or node)
    try:
        found = _read_node(settings, target)
    except Exception:  # noqa: BLE001 - the API may be down for a while: keep watching
        log.exception("could not look for node %s", node)
        found = None
    if found is None:
        if time.time() + WATCH_INTERVAL_S > deadline:
            return "gave up"
        jobs.enqueue_in(settings, jobs.NODE_WATCH, timedelta(seconds=WATCH_INTERVAL_S), incident_id, node, deadline,
                        redis=redis, description=f"watch for node {node} to return", on_cluster=record.get("cluster"),
                        cluster=record.get("cluster"))
        return "waiting"
    if not redis.hsetnx(key, "returned_at", repr(time.time())):
        return "done"  # another watch told the incident already
    templates = renderer_for(settings.templates_dir)
    params = restore_request_params(record)
    unschedulable = bool((found.get("spec") or {}).get("unschedulable"))
    text = templates.render("node_returned.slack.j2", node=target, was=node, params=params, unschedulable=unschedulable,
                            labels=sorted(params["labels"].items()), taints=params["taints"])
    slack.post_message(record["channel"], text, recovery_blocks.restore_blocks(text, node, target, templates))
    return "returned"


def restored(settings: Settings, redis: Redis, request: ActionRequest) -> None:
    """``restore node`` succeeded: check the rebalance once the window has passed."""
    if not request.incident_id:
        return
    jobs.enqueue_in(settings, jobs.NODE_REBALANCE, timedelta(seconds=settings.node_rebalance_window_seconds),
                    request.incident_id, request.target, request.channel_id, time.time(), redis=redis,
                    description=f"rebalance check of node {request.target}", on_cluster=request.cluster,
                    cluster=request.cluster)


def _ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def _scheduled_at(pod: dict[str, Any]) -> float | None:
    """When the scheduler bound the pod (its PodScheduled condition), else when it was created (epoch seconds)."""
    from incident.clock import parse_moment

    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            moment = parse_moment(condition.get("lastTransitionTime"))
            if moment is not None:
                return moment.timestamp()
    moment = parse_moment((pod.get("metadata") or {}).get("creationTimestamp"))
    return moment.timestamp() if moment is not None else None


def check_rebalance(settings: Settings, slack: Notifier, node: str, channel: str, since: float) -> dict[str, Any]:
    """Ready, schedulable, and how many pods landed on the node since ``since`` (its labels re-applied); posted."""
    kube = KubeApi.from_settings(settings)
    try:
        try:
            found: dict[str, Any] | None = kube.get_json(f"/api/v1/nodes/{node}")
        except ObjectNotFound:
            found = None
        pods = [] if found is None else list(kube.list_items("/api/v1/pods", field_selector=f"spec.nodeName={node}"))
    finally:
        kube.close()
    landed = sum(1 for pod in pods if (moment := _scheduled_at(pod)) is not None and moment >= since - 1)
    result = {"node": node, "present": found is not None, "ready": bool(found) and _ready(found or {}),
              "schedulable": bool(found) and not ((found or {}).get("spec") or {}).get("unschedulable"),
              "landed": landed, "pods": len(pods), "window_s": settings.node_rebalance_window_seconds}
    slack.post_message(channel, renderer_for(settings.templates_dir).render("node_rebalance.slack.j2", **result))
    return result
