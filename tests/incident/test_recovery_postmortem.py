"""The post-mortem's recovery effectiveness and the drill score from guided-recovery facts on a real timeline
(Redis): which actions came from the plan (and whether they were its suggested step), what was undone, how long
each step took, and when the first verdict's pattern cleared."""

from __future__ import annotations

from datetime import timedelta

import redis

from incident.drill import score_drill
from incident.model import Incident
from incident.postmortem import build_report
from incident.templates import TemplateRenderer
from persistence.store import IncidentStore
from tests.incident.test_postmortem import T0, StepClock, _assessment


def _timeline(redis_client: redis.Redis, *, out_of_order: bool = False):  # type: ignore[no-untyped-def]
    clock = StepClock()
    store = IncidentStore(redis_client, clock=clock)
    incident = store.create(Incident(id="20261202-001", title="node down", severity="sev1", channel_id="C1",
                                     channel_name="inc-20261202-node-down", opened_by="U_ALICE", opened_at=T0))
    timeline = store.timeline(incident.id)

    def at(minutes: float):  # type: ignore[no-untyped-def]
        clock.moment = T0 + timedelta(minutes=minutes)
        return clock.moment

    def action(action_id: str, description: str, start: float, end: float, **origin: object) -> None:
        timeline.append("action_requested", "U_ALICE", {"action_id": action_id, "description": description, **origin},
                        at=at(start - 0.5))
        timeline.append("action", "U_ALICE", {
            "action_id": action_id, "description": description, "requested_by": "U_ALICE", "confirmed_by": ["U_BOB"],
            "status": "succeeded", "outcome": "succeeded", "started_at": at(start).isoformat(),
            "finished_at": at(end).isoformat()}, at=at(end))

    timeline.append("drill_started", "bot", {"scenario": "node-failure", "expected_pattern": "Node failure"}, at=at(0))
    timeline.append("assessment", "bot", _assessment(["Node failure"], ["nodes"], "component"), at=at(2))
    if out_of_order:
        action("A1", "drain node kwok-node-2", 3, 4, plan_step=2, plan_primary=False)
    else:
        action("A1", "cordon node kwok-node-2", 3, 3.5, plan_step=1, plan_primary=True)
    action("A2", "uncordon node kwok-node-2", 5, 5.5, undo_of="A1")
    action("A3", "delete node kwok-node-2", 6, 7, plan_step=3, plan_primary=True)
    timeline.append("assessment", "bot", _assessment([], [], "healthy"), at=at(8))
    return incident, list(timeline.iter_entries())


def test_recovery_effectiveness_names_plan_steps_undos_durations_and_the_time_to_clear(redis_client: redis.Redis) -> None:
    incident, entries = _timeline(redis_client)
    report = build_report(incident, entries, now=T0 + timedelta(minutes=10))
    assert [(a.action_id, a.plan_step, a.plan_primary, a.undo_of) for a in report.actions] == [
        ("A1", 1, True, ""), ("A2", None, False, "A1"), ("A3", 3, True, "")]
    assert [a.duration for a in report.actions] == [timedelta(seconds=30), timedelta(seconds=30), timedelta(minutes=1)]
    assert [(a.action_id, u.action_id) for a, u in report.undone] == [("A1", "A2")]
    (clearing,) = report.pattern_clearing
    assert clearing.title == "Node failure" and clearing.cleared_at - clearing.first_seen == timedelta(minutes=6)
    text = TemplateRenderer().render("postmortem.md.j2", report=report, drill=None)
    assert "| cordon node kwok-node-2 | plan step 1 (suggested) | U_ALICE / U_BOB | 30s | succeeded |" in text
    assert "| uncordon node kwok-node-2 | undo of A1 |" in text
    assert "- cordon node kwok-node-2 (A1) was undone by uncordon node kwok-node-2 (A2, succeeded)" in text
    assert "- Node failure: cleared after 6m" in text


def test_the_drill_counts_whether_the_suggested_order_was_followed_and_how_many_steps(redis_client: redis.Redis) -> None:
    incident, entries = _timeline(redis_client)
    score = score_drill(build_report(incident, entries, now=T0 + timedelta(minutes=10)), "node-failure",
                        "Node failure", timedelta(minutes=15))
    assert score.suggested_order_followed and score.steps_to_clear == 3
    assert ("suggested recovery order followed (3 step(s) to clear the pattern)", True) in score.checks

    redis_client.flushdb()
    incident, entries = _timeline(redis_client, out_of_order=True)
    score = score_drill(build_report(incident, entries, now=T0 + timedelta(minutes=10)), "node-failure",
                        "Node failure", timedelta(minutes=15))
    assert not score.suggested_order_followed
    assert score.skipped_suggestions == ["drain node kwok-node-2 (plan step 2, not the suggested step)"]
