"""Risky action requests: what was asked, by whom, and where it stands — stored as a Redis hash.

An :class:`ActionRequest` moves through ``preparing`` (validation and server-side dry-run in a
worker) → ``awaiting_confirmation`` (Confirm/Cancel buttons, until ``confirm_deadline``) →
``queued`` (in the per-cluster FIFO, see :mod:`persistence.action_queue`) → ``running`` (under the
per-cluster lock, see :mod:`persistence.action_lock`) → ``succeeded`` / ``failed`` /
``outcome_unknown`` (its worker died mid-way). Side exits: ``rejected`` (the cluster said no at
validation), ``cancelled``, ``expired``.

Confirmation is one Lua script, so a click after expiry, a second click by the same person or a
click on a request that is no longer waiting changes nothing and says why (:class:`ConfirmationError`).
What a kind *is* (words, description, destructive, guarded, …) lives in its spec
(:mod:`incident.action_kinds`); a request only names its kind. Pure core: imports neither Slack nor
Kubernetes. Used by ``bot.action_commands`` and ``workers.actions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from redis import Redis

from incident.action_kinds import ActionSpec, action_specs
from incident.assessment import control_plane_evidence, failing_control_plane_layers, verdict_of_entry
from incident.clock import Clock, SystemClock, from_epoch, to_epoch
from incident.errors import ConfirmationError
from persistence.keys import Keys

APPLICATION_KINDS = frozenset(spec.kind for spec in action_specs() if spec.guarded)
"""Kinds the recovery-order guard holds back while the control plane is failing (the specs' ``guarded``;
``ActionRequest.guarded`` says the same for one request)."""


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


# --- storage ------------------------------------------------------------------------------------------

_CONFIRM = """
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return {'missing'} end
local status = redis.call('HGET', h, 'status')
local confirmed = redis.call('HGET', h, 'confirmed_by') or ''
if status ~= 'awaiting_confirmation' then return {'status', status, confirmed} end
local deadline = tonumber(redis.call('HGET', h, 'confirm_deadline'))
if tonumber(ARGV[2]) > deadline then
  redis.call('HSET', h, 'status', 'expired', 'finished_at', ARGV[2])
  return {'expired'}
end
for who in string.gmatch(confirmed, '[^,]+') do
  if who == ARGV[1] then return {'twice', confirmed} end
end
local guard = redis.call('HGET', h, 'guard') or ''
local acked = redis.call('HGET', h, 'guard_ack_by') or ''
if guard ~= '' and acked == '' then
  if ARGV[3] ~= '1' then return {'guard', guard} end
  redis.call('HSET', h, 'guard_ack_by', ARGV[1])
end
if confirmed == '' then confirmed = ARGV[1] else confirmed = confirmed .. ',' .. ARGV[1] end
redis.call('HSET', h, 'confirmed_by', confirmed)
local _, commas = string.gsub(confirmed, ',', ',')
local needed = tonumber(redis.call('HGET', h, 'confirmers_needed') or '1')
if commas + 1 < needed then return {'more', tostring(commas + 1), tostring(needed)} end
redis.call('HSET', h, 'status', 'queued', 'queued_at', ARGV[2], 'ticket', redis.call('INCR', KEYS[3]))
local length = redis.call('RPUSH', KEYS[2], redis.call('HGET', h, 'id'))
return {'queued', tostring(length)}
"""

_EXPIRE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'awaiting_confirmation' then return 0 end
if tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[1], 'confirm_deadline')) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'expired', 'finished_at', ARGV[1])
return 1
"""

_SET_IF_STATUS = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


@dataclass(frozen=True)
class Confirmation:
    """The result of a confirm click that changed something."""

    request: ActionRequest
    queued: bool
    position: int | None = None
    """1-based position in the cluster's FIFO (1 = next or running) when ``queued``."""


class ActionStore:
    """Creates, reads and moves action requests (not the running part: see ``persistence.action_queue``)."""

    def __init__(self, redis: Redis, keys: Keys | None = None, clock: Clock | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.clock = clock or SystemClock()
        self._confirm = redis.register_script(_CONFIRM)
        self._expire = redis.register_script(_EXPIRE)
        self._set_if = redis.register_script(_SET_IF_STATUS)

    def new(self, *, cluster: str, kind: str, target: str, requested_by: str, channel_id: str,
            incident_id: str | None, params: dict[str, Any] | None = None,
            second_confirmer_for_destructive: bool = False) -> ActionRequest:
        """Store a new request in ``preparing`` and return it (ids ``A1``, ``A2``, …)."""
        number = self.redis.incr(self.keys.action_seq())
        request = ActionRequest(id=f"A{number}", cluster=cluster, kind=kind, target=target,
                                requested_by=requested_by, channel_id=channel_id, requested_at=self.clock.now(),
                                incident_id=incident_id, params=dict(params or {}))
        if second_confirmer_for_destructive and request.destructive:
            request.confirmers_needed = 2
        self.redis.hset(self.keys.action(request.id), mapping=request.to_hash())
        return request

    def get(self, action_id: str) -> ActionRequest:
        data = self.redis.hgetall(self.keys.action(action_id))
        if not data:
            raise ConfirmationError(f"No action `{action_id[:20]}` exists.",
                                    hint="`/k8s queue` lists the running and waiting actions with their ids.")
        return ActionRequest.from_hash(data)

    def find(self, action_id: str) -> ActionRequest | None:
        data = self.redis.hgetall(self.keys.action(action_id))
        return ActionRequest.from_hash(data) if data else None

    def set_fields(self, action_id: str, fields: dict[str, str]) -> None:
        """Bookkeeping with no state meaning (the confirmation message's ts)."""
        self.redis.hset(self.keys.action(action_id), mapping=fields)

    def _move(self, action_id: str, expected: ActionStatus, fields: dict[str, str]) -> bool:
        args: list[str] = [expected.value]
        for name, value in fields.items():
            args += [name, value]
        return bool(self._set_if(keys=[self.keys.action(action_id)], args=args))

    def prepared(self, action_id: str, *, dry_run: str, guard: str, ttl_seconds: int) -> ActionRequest:
        """``preparing`` → ``awaiting_confirmation`` with the dry-run summary and the deadline."""
        deadline = self.clock.now() + timedelta(seconds=ttl_seconds)
        if not self._move(action_id, ActionStatus.PREPARING, {
            "status": ActionStatus.AWAITING_CONFIRMATION.value, "dry_run": dry_run, "guard": guard,
            "confirm_deadline": repr(to_epoch(deadline)),
        }):
            raise ConfirmationError(f"Action `{action_id}` is no longer being prepared ({self.get(action_id).status}).")
        return self.get(action_id)

    def reject(self, action_id: str, reason: str) -> bool:
        """``preparing`` → ``rejected``: validation or dry-run said no."""
        return self._move(action_id, ActionStatus.PREPARING, {
            "status": ActionStatus.REJECTED.value, "outcome": reason, "finished_at": repr(to_epoch(self.clock.now())),
        })

    def expire(self, action_id: str) -> bool:
        """``awaiting_confirmation`` → ``expired`` once the deadline has passed; false otherwise."""
        return bool(self._expire(keys=[self.keys.action(action_id)], args=[repr(to_epoch(self.clock.now()))]))

    def confirm(self, action_id: str, user_id: str, *, proceed_anyway: bool = False) -> Confirmation:
        """Record ``user_id``'s confirmation, atomically; queue the action once enough people confirmed.

        Raises :class:`ConfirmationError` (nothing changed) when the request is unknown, not waiting
        for confirmation, expired, already confirmed by this person, or held by the recovery-order
        guard without ``proceed_anyway``. The caller checks that the user is allowed at all.
        """
        now = repr(to_epoch(self.clock.now()))
        cluster = self._cluster_of(action_id)
        raw = self._confirm(keys=[self.keys.action(action_id), self.keys.action_queue(cluster),
                                  self.keys.action_tickets(cluster)],
                            args=[user_id, now, "1" if proceed_anyway else "0"])
        result = [part.decode() if isinstance(part, bytes) else str(part) for part in raw]
        verdict = result[0]
        if verdict == "queued":
            return Confirmation(self.get(action_id), queued=True, position=int(result[1]))
        if verdict == "more":
            return Confirmation(self.get(action_id), queued=False)
        raise _confirm_refusal(action_id, user_id, result)

    def _cluster_of(self, action_id: str) -> str:
        cluster = self.redis.hget(self.keys.action(action_id), "cluster")
        return cluster.decode() if cluster else "-"


def _confirm_refusal(action_id: str, user_id: str, result: list[str]) -> ConfirmationError:
    verdict = result[0]
    if verdict == "missing":
        return ConfirmationError(f"No action `{action_id}` exists; nothing was done.")
    if verdict == "expired":
        return ConfirmationError(f"Action `{action_id}` expired before it was confirmed; nothing was done.",
                                 hint="Ask again with the same command to get a fresh dry-run.")
    if verdict == "twice":
        return ConfirmationError(f"You already confirmed action `{action_id}`; nothing changed.",
                                 hint="It needs a second, different person to confirm.")
    if verdict == "guard":
        return ConfirmationError(
            f"Action `{action_id}` is held back: the latest assessment says the control plane is failing ({result[1]}).",
            hint="The runbook recovers infrastructure first. Use *Proceed anyway* if you are sure.")
    status = result[1] if len(result) > 1 else "unknown"
    who = ", ".join(f"<@{u}>" for u in (result[2] if len(result) > 2 else "").split(",") if u)
    labels = {
        "preparing": "is still being checked against the cluster",
        "rejected": "was rejected by the cluster checks",
        "queued": "is already confirmed and queued" + (f" (confirmed by {who})" if who else ""),
        "running": "is already running",
        "succeeded": "has already run", "failed": "has already run (it failed)",
        "cancelled": "was cancelled", "expired": "has expired", "outcome_unknown": "has already run (outcome unknown)",
    }
    return ConfirmationError(f"Action `{action_id}` {labels.get(status, status)}; this click changed nothing.")


def latest_assessment_guard(redis: Redis, keys: Keys, incident_id: str | None) -> str:
    """The recovery-order guard reason from the incident's latest ``assessment`` entry (``""``: none)."""
    if not incident_id:
        return ""
    from persistence.timeline import Timeline

    entry = Timeline(redis, incident_id, keys).latest("assessment")
    return control_plane_failure(entry.data) if entry is not None else ""
