"""Risky action requests: what was asked, by whom, and where it stands (pure; stored as a Redis hash of strings).

An :class:`ActionRequest` moves through ``preparing`` (validation and server-side dry-run in a
worker) → ``awaiting_confirmation`` (Confirm/Cancel buttons, until ``confirm_deadline``) →
``queued`` (in the per-cluster FIFO, see :mod:`persistence.action_queue`) → ``running`` (under the
per-cluster lock, see :mod:`persistence.action_lock`) → ``succeeded`` / ``failed`` /
``outcome_unknown`` (its worker died mid-way). Side exits: ``rejected`` (the cluster said no at
validation), ``cancelled``, ``expired``.

What a kind *is* (words, description, destructive, guarded, …) lives in its spec
(:mod:`incident.action_kinds`); a request only names its kind. The requests are stored and moved by
:class:`persistence.action_store.ActionStore` (confirmation is one atomic script). Pure domain: imports
neither Redis, Slack nor Kubernetes. Used by ``persistence``, ``service``, ``kube.actions`` and ``chat``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from incident.action_kinds import ActionSpec, action_specs
from incident.assessment import control_plane_evidence, failing_control_plane_layers, verdict_of_entry
from incident.clock import from_epoch, to_epoch


class ActionStatus(StrEnum):
    """Where a request stands."""

    PREPARING = "preparing"
    REJECTED = "rejected"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    OUTCOME_UNKNOWN = "outcome_unknown"


FINAL_STATUSES = frozenset({ActionStatus.REJECTED, ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.CANCELLED,
                            ActionStatus.EXPIRED, ActionStatus.OUTCOME_UNKNOWN})


@dataclass(frozen=True)
class Outcome:
    """What running an action did, in words for the channel and the audit."""

    succeeded: bool
    text: str
    undo: dict[str, Any] | None = None
    """The inverse of what it did, as a request (``{"kind", "target", "params"}``), when the executor knows one:
    offered as *Undo* (guided recovery, ``service.recovery_record``)."""
    undo_note: str = ""
    """Why there is no inverse (a restart replaced pods), said where *Undo* would be."""
    before: dict[str, Any] | None = None
    """What the object looked like before, when a later step needs it: a deleted node's ``labels`` and
    ``taints``, re-applied when it registers again (``service.node_restore``)."""


# --- the request --------------------------------------------------------------------------------------


@dataclass
class ActionRequest:
    """One risky action request (a Redis hash of strings)."""

    id: str
    cluster: str
    kind: str
    """A kind of :mod:`incident.action_kinds` (``cordon``, ``delete-node``, …)."""
    target: str
    requested_by: str
    channel_id: str
    requested_at: datetime
    incident_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    status: ActionStatus = ActionStatus.PREPARING
    confirmers_needed: int = 1
    confirm_deadline: datetime | None = None
    confirmed_by: list[str] = field(default_factory=list)
    dry_run: str = ""
    guard: str = ""
    """Why the recovery-order guard holds this action back (empty: no guard)."""
    guard_ack_by: str = ""
    message_ts: str = ""
    """The confirmation message, updated as the request moves."""
    fence: int | None = None
    worker: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str = ""
    cancelled_by: str = ""
    ticket: int | None = None
    """Queue order of the cluster's confirmed actions (1, 2, …): the request order the FIFO keeps."""

    @property
    def spec(self) -> ActionSpec:
        """Everything about this request's kind (:mod:`incident.action_kinds`)."""
        return action_specs().get(self.kind)

    @property
    def description(self) -> str:
        """What a person would type, e.g. ``drain node kwok-node-1``, ``scale deployment shop/web to 0``."""
        return self.spec.describe(self.target, self.params)

    @property
    def destructive(self) -> bool:
        """Cannot be undone (delete node, scale to zero): the ones that may need a second confirmer."""
        return self.spec.destructive(self.params)

    @property
    def guarded(self) -> bool:
        """Held back by the recovery-order guard while the control plane is failing."""
        return self.spec.guarded

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def expires_in(self, now: datetime) -> timedelta:
        return (self.confirm_deadline - now) if self.confirm_deadline else timedelta(0)

    def audit(self) -> dict[str, Any]:
        """The audit entry of the incident timeline (kind ``action``)."""
        return {
            "action_id": self.id, "cluster": self.cluster, "description": self.description, "kind": self.kind,
            "target": self.target, "params": self.params, "requested_by": self.requested_by,
            "requested_at": to_epoch(self.requested_at), "confirmed_by": self.confirmed_by,
            "guard": self.guard, "guard_ack_by": self.guard_ack_by, "dry_run": self.dry_run,
            "started_at": to_epoch(self.started_at) if self.started_at else None,
            "finished_at": to_epoch(self.finished_at) if self.finished_at else None,
            "status": self.status.value, "outcome": self.outcome, "fence": self.fence, "worker": self.worker,
            "ticket": self.ticket,
        }

    def to_hash(self) -> dict[str, str]:
        import json

        out = {
            "id": self.id, "cluster": self.cluster, "kind": self.kind, "target": self.target,
            "requested_by": self.requested_by, "channel_id": self.channel_id,
            "requested_at": repr(to_epoch(self.requested_at)), "incident_id": self.incident_id or "",
            "params": json.dumps(self.params, sort_keys=True), "status": self.status.value,
            "confirmers_needed": str(self.confirmers_needed), "confirmed_by": ",".join(self.confirmed_by),
            "dry_run": self.dry_run, "guard": self.guard, "guard_ack_by": self.guard_ack_by,
            "message_ts": self.message_ts, "worker": self.worker, "outcome": self.outcome,
            "cancelled_by": self.cancelled_by,
        }
        for name in ("confirm_deadline", "started_at", "finished_at"):
            value = getattr(self, name)
            out[name] = repr(to_epoch(value)) if value else ""
        out["fence"] = str(self.fence) if self.fence is not None else ""
        out["ticket"] = str(self.ticket) if self.ticket is not None else ""
        return out

    @classmethod
    def from_hash(cls, data: dict[bytes, bytes] | dict[str, str]) -> "ActionRequest":
        import json

        text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in data.items()}

        def moment(name: str) -> datetime | None:
            return from_epoch(float(text[name])) if text.get(name) else None

        requested_at = moment("requested_at")
        assert requested_at is not None, "stored action without requested_at"
        return cls(
            id=text["id"], cluster=text["cluster"], kind=action_specs().get(text["kind"]).kind, target=text["target"],
            requested_by=text["requested_by"], channel_id=text["channel_id"], requested_at=requested_at,
            incident_id=text.get("incident_id") or None, params=json.loads(text.get("params") or "{}"),
            status=ActionStatus(text.get("status", "preparing")),
            confirmers_needed=int(text.get("confirmers_needed") or 1), confirm_deadline=moment("confirm_deadline"),
            confirmed_by=[u for u in (text.get("confirmed_by") or "").split(",") if u],
            dry_run=text.get("dry_run", ""), guard=text.get("guard", ""), guard_ack_by=text.get("guard_ack_by", ""),
            message_ts=text.get("message_ts", ""), fence=int(text["fence"]) if text.get("fence") else None,
            worker=text.get("worker", ""), started_at=moment("started_at"), finished_at=moment("finished_at"),
            outcome=text.get("outcome", ""), cancelled_by=text.get("cancelled_by", ""),
            ticket=int(text["ticket"]) if text.get("ticket") else None,
        )


# --- the recovery-order guard -------------------------------------------------------------------------

GUARDED_LAYERS = frozenset({"etcd", "apiserver"})
"""A failure here holds application actions back; a scheduler-only control-plane failure does not."""
GUARDED_CHECKS = ("apiserver", "etcd")
FAILED_CHECK_STATUSES = frozenset({"fail", "timeout", "error"})


def control_plane_failure(assessment: dict[str, Any] | None) -> str:
    """Why the latest assessment says etcd/apiserver is failing, or ``""`` (missing or healthy: no guard).

    Reads the ``assessment`` timeline entry's data: the control-plane pattern when its failing layers
    include etcd or the apiserver (:func:`incident.assessment.failing_control_plane_layers`), and the
    apiserver/etcd checks of the snapshot that failed or could not finish.
    """
    if not isinstance(assessment, dict):
        return ""
    reasons: list[str] = []
    verdict = verdict_of_entry(assessment)
    if GUARDED_LAYERS & set(failing_control_plane_layers(verdict)):
        reasons.append(control_plane_evidence(verdict))
    snapshot = assessment.get("snapshot")
    for check in (snapshot.get("checks") or []) if isinstance(snapshot, dict) else []:
        if isinstance(check, dict) and check.get("name") in GUARDED_CHECKS and check.get("status") in FAILED_CHECK_STATUSES:
            reasons.append(f"{check['name']} check: {check['status']}")
    return "; ".join(dict.fromkeys(r for r in reasons if r))[:500]
