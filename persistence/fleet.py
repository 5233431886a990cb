"""Redis side of many clusters: channel bindings, agent heartbeats, each cluster's latest verdict, fleet runs.

- **Bindings** (``/k8s bind cluster``): one hash channel → cluster. A bound channel's commands act on
  that cluster only.
- **Heartbeats**: an agent (``k8s-incident-bot agent --cluster X``) writes when it was last seen into a
  hash that expires after the heartbeat window, so a SIGKILLed agent disappears by itself and an
  assessment for its cluster is answered at once instead of waiting in a queue nobody reads.
- **Reachability of central clusters**: the central workers' last ``/readyz`` probe of each central cluster
  (reachable, or the reason), in a hash that expires a few probe intervals later: no record means no
  central worker probed it lately, which says nothing about the cluster.
- **Latest verdict**: the scope and headline of each cluster's last assessment, for ``/k8s clusters``.
- **Fleet runs** (``/k8s assess --cluster all``): one hash per run gathering each cluster's row; the job
  that adds the last row posts the matrix (:meth:`FleetStore.add_row` tells it so, atomically).

Persistence only; what these mean is :mod:`service.fleet`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

from persistence.keys import Keys

KEPT_WINDOWS = 100
"""A heartbeat record is kept this many heartbeat windows (at least an hour) after the last beat."""
FLEET_RUN_SECONDS = 3600
"""How long a fleet run's rows are kept (the matrix is posted long before)."""


@dataclass(frozen=True)
class _Stamped:
    """A record of something seen at ``at`` (epoch seconds)."""

    at: float

    def age(self, now: float | None = None) -> float:
        """Seconds since it was seen (never negative: clocks of two hosts may disagree a little)."""
        return max(0.0, (now if now is not None else time.time()) - self.at)


@dataclass(frozen=True)
class Heartbeat(_Stamped):
    """When an agent was last seen, and which process it was."""

    host: str
    pid: int


@dataclass(frozen=True)
class Reach(_Stamped):
    """A central worker's last probe of a central cluster's apiserver."""

    problem: str | None
    """``None``: it answered; else why not ("GET /readyz: connection refused")."""

    @property
    def reachable(self) -> bool:
        return self.problem is None


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


class FleetStore:
    """Bindings, heartbeats, latest verdicts and fleet runs of one installation."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    # --- channel bindings ------------------------------------------------------------------------
    def bound(self, channel_id: str) -> str | None:
        return _text(self.redis.hget(self.keys.channel_clusters(), channel_id))

    def bind(self, channel_id: str, cluster: str) -> str | None:
        """Bind ``channel_id`` to ``cluster``; returns the cluster it was bound to before (or ``None``)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.keys.channel_clusters(), channel_id)
            pipe.hset(self.keys.channel_clusters(), channel_id, cluster)
            before, _ = pipe.execute()
        return _text(before)

    def unbind(self, channel_id: str) -> str | None:
        """Remove the binding; returns the cluster it was bound to (or ``None``)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.keys.channel_clusters(), channel_id)
            pipe.hdel(self.keys.channel_clusters(), channel_id)
            before, _ = pipe.execute()
        return _text(before)

    # --- agent heartbeats -------------------------------------------------------------------------
    def beat(self, cluster: str, host: str, pid: int, window_seconds: int, pipeline: Any = None) -> None:
        """Record that the agent of ``cluster`` is alive now.

        The record outlives the window (``KEPT_WINDOWS`` of them) so ``/k8s clusters`` can say when a down
        agent was last seen; whether it is up is its age against the window (:func:`service.fleet.agent_seen`).
        """
        connection = pipeline if pipeline is not None else self.redis
        key = self.keys.agent_heartbeat(cluster)
        connection.hset(key, mapping={"at": repr(time.time()), "host": host, "pid": str(pid)})
        connection.expire(key, max(window_seconds * KEPT_WINDOWS, 3600))

    def heartbeat(self, cluster: str) -> Heartbeat | None:
        raw = {_text(k): _text(v) for k, v in self.redis.hgetall(self.keys.agent_heartbeat(cluster)).items()}
        if not raw.get("at"):
            return None
        return Heartbeat(float(str(raw["at"])), str(raw.get("host") or "?"), int(raw.get("pid") or 0))

    # --- central clusters' reachability ---------------------------------------------------------------
    def record_reach(self, cluster: str, problem: str | None, kept_seconds: int) -> None:
        """Record a probe of ``cluster``'s apiserver now: ``problem`` is ``None`` when it answered."""
        key = self.keys.cluster_reach(cluster)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"at": repr(time.time()), "problem": problem or ""})
            pipe.expire(key, max(1, kept_seconds))
            pipe.execute()

    def reach(self, cluster: str) -> Reach | None:
        """The last probe of ``cluster`` still kept (``None``: not probed lately)."""
        raw = {_text(k): _text(v) for k, v in self.redis.hgetall(self.keys.cluster_reach(cluster)).items()}
        if not raw.get("at"):
            return None
        return Reach(float(str(raw["at"])), raw.get("problem") or None)

    # --- latest verdicts ----------------------------------------------------------------------------
    def record_verdict(self, cluster: str, summary: dict[str, Any]) -> None:
        self.redis.hset(self.keys.cluster_verdict(cluster), mapping={"json": json.dumps(summary, default=str)})

    def verdict(self, cluster: str) -> dict[str, Any] | None:
        raw = _text(self.redis.hget(self.keys.cluster_verdict(cluster), "json"))
        return dict(json.loads(raw)) if raw else None

    # --- fleet runs ----------------------------------------------------------------------------------
    def start_run(self, run_id: str, meta: dict[str, Any]) -> None:
        key = self.keys.fleet_run(run_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"meta": json.dumps(meta, default=str)})
            pipe.expire(key, FLEET_RUN_SECONDS)
            pipe.execute()

    def add_row(self, run_id: str, cluster: str, row: dict[str, Any]) -> dict[str, Any] | None:
        """Add one cluster's row (a retried job's second row is ignored); returns the whole run (meta and rows)
        once every cluster has its row and the matrix is not posted yet, else ``None``.

        ``HSETNX`` then ``HGETALL`` in one transaction: of the first attempts, exactly one sees the run
        complete. A completer that failed before :meth:`mark_posted` leaves it to its job's retry.
        """
        key = self.keys.fleet_run(run_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, f"row:{cluster}", json.dumps(row, default=str))
            pipe.hgetall(key)
            _, everything = pipe.execute()
        fields = {str(_text(k)): str(_text(v)) for k, v in everything.items()}
        meta = json.loads(fields.get("meta") or "{}")
        rows = {k[4:]: json.loads(v) for k, v in fields.items() if k.startswith("row:")}
        if fields.get("posted") or len(rows) < len(meta.get("clusters") or ()):
            return None
        return {"meta": meta, "rows": rows}

    def mark_posted(self, run_id: str) -> bool:
        """Record that the matrix was queued; false if someone else did already."""
        return bool(self.redis.hsetnx(self.keys.fleet_run(run_id), "posted", "1"))
