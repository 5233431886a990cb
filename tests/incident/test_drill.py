"""Drill scoring from a post-mortem report built on a real timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from incident.drill import action_layer, score_drill
from incident.model import Incident
from incident.postmortem import build_report
from persistence.store import IncidentStore

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _incident(store: IncidentStore) -> Incident:
    return store.create(Incident(id="D1", title="drill", severity="sev1", channel_id="C9", channel_name="inc-drill",
                                 opened_by="U1", opened_at=T0))


def test_layers() -> None:
    assert action_layer("cordon node kwok-node-1") == "infrastructure"
    assert action_layer("restart deployment kube-system/coredns") == "dns/ingress"
    assert action_layer("scale deployment shop/web 3") == "applications"


def test_good_drill_scores_full_marks(redis_client: redis.Redis) -> None:
    store = IncidentStore(redis_client)
    incident = _incident(store)
    timeline = store.timeline(incident.id)
    timeline.append("assessment", "bot", {"verdict": {"scope": "component", "patterns": [{"title": "DNS cascade"}]}},
                    at=T0 + timedelta(minutes=2))
    timeline.append("action", "U1", {"description": "restart deployment kube-system/coredns", "outcome": "succeeded"},
                    at=T0 + timedelta(minutes=6))
    timeline.append("action", "U1", {"description": "restart deployment shop/web", "outcome": "succeeded"},
                    at=T0 + timedelta(minutes=8))
    timeline.append("status_update", "U1", {"text": "dns back"}, at=T0 + timedelta(minutes=10))
    report = build_report(incident, timeline.iter_entries(), now=T0 + timedelta(minutes=20))
    score = score_drill(report, "dns-cascade", "DNS cascade", cadence=timedelta(minutes=15))
    assert score.points == score.max_points == 6


def test_bad_drill_names_each_miss(redis_client: redis.Redis) -> None:
    store = IncidentStore(redis_client)
    incident = _incident(store)
    timeline = store.timeline(incident.id)
    timeline.append("action", "U1", {"description": "scale deployment shop/web 5", "outcome": "succeeded"},
                    at=T0 + timedelta(minutes=3))
    timeline.append("action", "U1", {"description": "drain node kwok-node-2", "outcome": "succeeded"},
                    at=T0 + timedelta(minutes=4))
    timeline.append("assessment", "bot", {"verdict": {"scope": "healthy", "patterns": []}},
                    at=T0 + timedelta(minutes=9))
    report = build_report(incident, timeline.iter_entries(), now=T0 + timedelta(minutes=40))
    score = score_drill(report, "node-failure", "Node failure", cadence=timedelta(minutes=15))
    failed = [name for name, ok in score.checks if not ok]
    assert failed == ["first assessment within 5 min", "pattern identified (Node failure)", "recovery order followed",
                      "status updates kept the cadence"]
    assert score.order_violations == ["drain node kwok-node-2 (infrastructure) came after scale deployment shop/web 5 (applications)"]
    assert score.longest_update_gap == timedelta(minutes=40)


def test_drill_report_is_written_into_the_postmortem(redis_client: redis.Redis, redis_url: str) -> None:
    from incident.settings import Settings
    from service.postmortem import draft_postmortem

    store = IncidentStore(redis_client)
    incident = _incident(store)
    timeline = store.timeline(incident.id)
    timeline.append("drill_started", "U1", {"scenario": "dns-cascade", "expected_pattern": "DNS cascade",
                                           "description": "CoreDNS has no ready replicas"}, at=T0)
    timeline.append("assessment", "bot", {"verdict": {"scope": "cluster-wide", "patterns": [{"title": "DNS cascade"}]}},
                    at=T0 + timedelta(minutes=3))
    report, text = draft_postmortem(Settings(redis_url=redis_url), redis_client, incident.id)
    assert report.drill == {"scenario": "dns-cascade", "expected_pattern": "DNS cascade",
                            "description": "CoreDNS has no ready replicas"}
    assert "## Drill report" in text
    assert "Scenario `dns-cascade` (expected pattern: DNS cascade)" in text
    assert "- ✅ pattern identified (DNS cascade)" in text
    assert "- ✅ first assessment within 5 min" in text
    assert "Time to first assessment: 3m" in text


def test_ordinary_incidents_have_no_drill_report(redis_client: redis.Redis, redis_url: str) -> None:
    from incident.settings import Settings
    from service.postmortem import draft_postmortem

    incident = _incident(IncidentStore(redis_client))
    _, text = draft_postmortem(Settings(redis_url=redis_url), redis_client, incident.id)
    assert "Drill report" not in text
