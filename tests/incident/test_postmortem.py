"""The post-mortem draft: sections and facts computed from a real timeline in Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from incident.model import Incident, Status
from incident.postmortem import SECTION_HEADINGS, build_report
from incident.settings import Settings
from persistence.store import IncidentStore
from incident.templates import TemplateRenderer

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class StepClock:
    def __init__(self) -> None:
        self.moment = T0

    def now(self) -> datetime:
        return self.moment


def _assessment(patterns: list[str], failing: list[str], scope: str) -> dict[str, object]:
    return {
        "verdict": {"scope": scope, "patterns": [{"title": p} for p in patterns], "headline": ", ".join(patterns) or "healthy"},
        "snapshot": {"checks": [{"name": n, "status": "fail"} for n in failing] + [{"name": "apiserver", "status": "ok"}]},
    }


def test_draft_has_every_section_with_the_facts(redis_client: redis.Redis) -> None:
    clock = StepClock()
    store = IncidentStore(redis_client, clock=clock)
    incident = store.create(Incident(id="20261123-001", title="API down", severity="sev2", channel_id="C1",
                                     channel_name="inc-20261123-api-down", opened_by="U_ALICE", opened_at=T0,
                                     commander="U_ALICE", customer_facing=True))
    timeline = store.timeline(incident.id)

    def at(minutes: int) -> datetime:
        clock.moment = T0 + timedelta(minutes=minutes)
        return clock.moment

    timeline.append("message", "U_BOB", {"ts": "100.1", "text": "nodes 2 and 3 NotReady", "channel": "C1"}, at=at(2))
    timeline.append("assessment", "bot", _assessment(["Node failure"], ["nodes"], "cluster-wide"), at=at(3))
    store.set_severity(incident.id, "sev1", "U_ALICE")
    timeline.append("message", "U_CAROL", {"ts": "100.2", "text": "Add a NotReady alert", "channel": "C1"}, at=at(6))
    timeline.append("reaction_added", "U_ALICE", {"ts": "100.2", "reaction": "action-item", "channel": "C1"}, at=at(7))
    timeline.append("pin_added", "U_ALICE", {"ts": "100.1", "channel": "C1"}, at=at(7))
    timeline.append("action", "U_BOB", {"description": "drain node worker-2", "requested_by": "U_BOB",
                                        "confirmed_by": ["U_ALICE"], "outcome": "succeeded",
                                        "started_at": (T0 + timedelta(minutes=10)).isoformat(),
                                        "finished_at": (T0 + timedelta(minutes=12)).isoformat()}, at=at(12))
    timeline.append("assessment", "bot", _assessment([], [], "healthy"), at=at(15))
    timeline.append("status_update", "U_ALICE", {"text": "workloads moved off worker-2"}, at=at(16))
    at(20)
    store.transition(incident.id, Status.MITIGATED, "U_ALICE")
    at(40)
    store.transition(incident.id, Status.RESOLVED, "U_ALICE")

    report = build_report(store.get(incident.id), timeline.iter_entries(), now=clock.now(),
                          permalink_base="https://acme.slack.com")
    assert report.max_severity == "sev1"
    assert report.time_to_first_assessment == timedelta(minutes=3)
    assert report.time_to_mitigate == timedelta(minutes=20)
    assert report.time_to_resolve == timedelta(minutes=40)
    assert report.customer_facing_duration == timedelta(minutes=20)
    assert report.root_cause_patterns == ["Node failure"]
    assert report.effects[0].verdict == "followed by improvement: nodes recovered"
    assert report.parallel_actions == []
    assert [item.text for item in report.action_items] == ["Add a NotReady alert"]
    assert report.action_items[0].link == "https://acme.slack.com/archives/C1/p1002"
    assert report.participants == [("U_BOB", 1), ("U_CAROL", 1)]

    text = TemplateRenderer(Settings().templates_dir).render("postmortem.md.j2", report=report)
    for heading in SECTION_HEADINGS:
        assert heading in text
    assert "| Duration | 40m |" in text
    assert "Node failure — **to confirm**" in text
    assert ("| drain node worker-2 | typed | U_BOB / U_ALICE | 2m | succeeded | followed by improvement: nodes recovered |"
            in text)
    assert "- [ ] Add a NotReady alert _(U_CAROL)_ [→](https://acme.slack.com/archives/C1/p1002)" in text
    assert "**09:03:00** — Assessment: Node failure" in text
    assert "Customer-facing for 20m" in text
    assert "All actions ran one at a time" in text


def test_overlapping_actions_are_called_out(redis_client: redis.Redis) -> None:
    store = IncidentStore(redis_client, clock=StepClock())
    incident = store.create(Incident(id="X", title="t", severity="sev3", channel_id="C2", channel_name="c",
                                     opened_by="U1", opened_at=T0))
    timeline = store.timeline(incident.id)
    for name, start, end in (("cordon node a", 1, 5), ("scale deployment x", 3, 4)):
        timeline.append("action", "U1", {"description": name, "outcome": "succeeded",
                                         "started_at": (T0 + timedelta(minutes=start)).isoformat(),
                                         "finished_at": (T0 + timedelta(minutes=end)).isoformat()})
    report = build_report(incident, timeline.iter_entries(), now=T0 + timedelta(hours=1))
    assert [(a.description, b.description) for a, b in report.parallel_actions] == [("cordon node a", "scale deployment x")]
    text = TemplateRenderer().render("postmortem.md.j2", report=report)
    assert "cordon node a overlapped scale deployment x" in text
