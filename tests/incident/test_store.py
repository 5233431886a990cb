"""Incident store and timeline on a real Redis: state machine, atomic timeline entries, dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from incident.errors import IncidentNotFound, InvalidTransition
from incident.model import Incident, Status
from persistence.store import PENDING, IncidentStore
from persistence.timeline import Timeline


class FixedClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


def make_incident(store: IncidentStore, channel: str = "C1") -> Incident:
    now = store.clock.now()
    incident = Incident(id=store.next_id(now), title="API down", severity="sev1", channel_id=channel,
                        channel_name="inc-20261123-api-down", opened_by="U1", opened_at=now, commander="U1")
    return store.create(incident, dedupe_key="k1")


@pytest.fixture()
def store(redis_client: redis.Redis) -> IncidentStore:
    return IncidentStore(redis_client, clock=FixedClock())


def test_create_and_read_back(store: IncidentStore) -> None:
    incident = make_incident(store)
    assert incident.id == "20261123-001"
    loaded = store.find_by_channel("C1")
    assert loaded == incident
    assert store.get(incident.id).commander == "U1"
    [entry] = store.timeline(incident.id).entries()
    assert entry.kind == "opened" and entry.data["title"] == "API down" and entry.actor == "U1"


def test_open_claim_is_idempotent(store: IncidentStore) -> None:
    assert store.claim_open("k1") is None
    assert store.claim_open("k1") == PENDING
    incident = make_incident(store)
    assert store.claim_open("k1") == incident.id
    store.release_open_claim("other")


def test_state_machine_and_timeline(store: IncidentStore) -> None:
    incident = make_incident(store)
    store.clock.moment += timedelta(minutes=20)  # type: ignore[attr-defined]
    mitigated = store.transition(incident.id, Status.MITIGATED, "U2")
    assert mitigated.status == Status.MITIGATED and mitigated.mitigated_at == store.clock.now()
    with pytest.raises(InvalidTransition):
        store.transition(incident.id, Status.MITIGATED, "U2")
    resolved = store.transition(incident.id, Status.RESOLVED, "U2")
    assert resolved.resolved_at is not None and not resolved.is_active
    with pytest.raises(InvalidTransition) as caught:
        store.transition(incident.id, Status.MITIGATED, "U2")
    assert "From resolved it can become: open" in (caught.value.hint or "")
    kinds = [(e.kind, e.data.get("to")) for e in store.timeline(incident.id).entries()]
    assert kinds == [("opened", None), ("status_changed", "mitigated"), ("status_changed", "resolved")]


def test_severity_and_roles_are_recorded(store: IncidentStore) -> None:
    incident = make_incident(store)
    assert store.set_severity(incident.id, "sev2", "U3").severity == "sev2"
    assert store.set_role(incident.id, "comms", "U4", "U3").comms == "U4"
    entries = store.timeline(incident.id).entries({"severity_changed", "role_assigned"})
    assert [e.data for e in entries] == [{"from": "sev1", "to": "sev2"},
                                         {"role": "comms", "user": "U4", "previous": None}]


def test_missing_incident(store: IncidentStore) -> None:
    with pytest.raises(IncidentNotFound):
        store.get("nope")
    assert store.find_by_channel("C404") is None


def test_timeline_dedupe_and_paging(redis_client: redis.Redis) -> None:
    timeline = Timeline(redis_client, "X")
    assert timeline.append("message", "U1", {"ts": "1"}, dedupe="message:1")
    assert timeline.append("message", "U1", {"ts": "1"}, dedupe="message:1") is None
    for i in range(2500):
        timeline.append("message", "U1", {"i": i})
    assert len(timeline) == 2501
    assert sum(1 for _ in timeline.iter_entries(page=1000)) == 2501
    latest = timeline.latest("message")
    assert latest is not None and latest.data == {"i": 2499}


def test_impact_flags_are_recorded(store: IncidentStore) -> None:
    incident = make_incident(store)
    updated = store.set_impact(incident.id, "U2", customer_facing=True, business_pressure=True)
    assert updated.customer_facing
    assert float(updated.extra["business_pressure_since"]) == store.clock.now().timestamp()
    updated = store.set_impact(incident.id, "U2", business_pressure=False)
    assert updated.customer_facing and updated.extra.get("business_pressure_since") == ""
    [first, second] = store.timeline(incident.id).entries({"impact_changed"})
    assert first.data == {"customer_facing": True, "business_pressure": True}
    assert second.data == {"business_pressure": False}
