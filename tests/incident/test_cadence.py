"""The cadence planner under controlled time: a simulated 90-minute SEV1 and the edge cases.

The simulator plays the tick job: evaluate, "send" what is due, record it, evaluate again. The
same incident is run minute by minute and event-driven (ticks only at ``Plan.next_at`` and
where the bot reschedules), and both must send exactly the same sequence.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from incident.cadence import (
    Anchor,
    CadencePolicy,
    CadenceState,
    Decision,
    EscalationState,
    Notice,
    NoticeKind,
    Signal,
    digest,
    plan,
    record_sent,
)
from incident.assessment import CheckResult, PatternMatch, Verdict
from incident.model import Incident, Status
from incident.settings import Settings
from incident.timeline import TimelineEntry
from incident.verdict import decide

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
POLICY = CadencePolicy.from_settings(Settings())


def only(*rules: str) -> CadencePolicy:
    """The default policy with only some escalation rules (none: the status cadence alone)."""
    return replace(POLICY, rules=tuple(r for r in POLICY.rules if r.key in rules))


STATUS_ONLY = only()


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


Sent = tuple[float, str, str | None]


class Sim:
    """The tick job without Redis and Slack."""

    def __init__(self, severity: str = "sev1", policy: CadencePolicy = POLICY) -> None:
        self.policy = policy
        self.state = CadenceState(severity=severity, status="open", opened_at=T0)
        self.sent: list[Sent] = []

    def tick(self, now: datetime) -> datetime | None:
        for _ in range(10):
            result = plan(self.policy, self.state, now)
            if not result.due:
                return result.next_at
            for notice in result.due:
                self.sent.append(((now - T0) / timedelta(minutes=1), notice.kind.value,
                                  notice.rule.key if notice.rule else None))
                self.state = record_sent(self.state, notice, now)
        raise AssertionError("the planner keeps finding due notices after they were sent")

    # --- what people and assessments do ---
    def update(self, now: datetime) -> None:
        self.state = replace(self.state, last_update_at=now)

    def signal(self, signal: Signal, since: datetime | None) -> None:
        signals = dict(self.state.signals)
        if since is None:
            signals.pop(signal, None)
        else:
            signals[signal] = since
        self.state = replace(self.state, signals=signals)

    def decide(self, rule: str, decision: Decision, now: datetime) -> None:
        escalations = dict(self.state.escalations)
        until = now + self.policy.snooze if decision == Decision.SNOOZED else None
        escalations[rule] = replace(escalations.get(rule, EscalationState()), decision=decision, decided_at=now,
                                    snoozed_until=until)
        self.state = replace(self.state, escalations=escalations)

    def status(self, status: str) -> None:
        self.state = replace(self.state, status=status)

    def severity(self, severity: str) -> None:
        self.state = replace(self.state, severity=severity)


# The story of the 90-minute SEV1, minute → what happens. "rescheduled" events are those after
# which the bot calls reschedule(); the others (assessments, flags) only show at the next tick.
def _sev1_story(sim: Sim, minute: int) -> bool:
    now = at(minute)
    if minute == 8:  # assessment: etcd quorum lost → control plane failing, etcd repair starts
        sim.signal(Signal.CONTROL_PLANE_FAILING, now)
        sim.signal(Signal.ETCD_REPAIR, now)
    elif minute == 22:
        sim.update(now)
        return True
    elif minute == 31:
        sim.decide("control_plane", Decision.SNOOZED, now)
        return True
    elif minute == 40:  # someone marks the incident customer facing (the outage counts from the opening)
        sim.signal(Signal.CUSTOMER_FACING, T0)
    elif minute == 48:
        sim.decide("customer_facing", Decision.DISMISSED, now)
        return True
    elif minute == 50:
        sim.decide("control_plane", Decision.ESCALATED, now)
        return True
    elif minute == 54:
        sim.update(now)
        return True
    elif minute == 55:
        sim.decide("etcd_repair", Decision.DISMISSED, now)
        return True
    elif minute == 60:
        sim.status("mitigated")
        return True
    elif minute == 70:
        sim.update(now)
        return True
    elif minute == 80:
        sim.status("resolved")
        return True
    return False


SEV1_EXPECTED: list[Sent] = [
    (15, "status_prompt", None),
    (20, "status_overdue", None),
    (30, "escalation_prompt", "control_plane"),
    (37, "status_prompt", None),
    (42, "status_overdue", None),
    (45, "escalation_prompt", "customer_facing"),
    (46, "escalation_prompt", "control_plane"),
    (47, "stakeholder_ping", None),
    (52, "status_prompt", None),
    (53, "escalation_prompt", "etcd_repair"),
    (69, "status_prompt", None),
]


def test_sev1_ninety_minutes_minute_by_minute() -> None:
    sim = Sim()
    for minute in range(0, 91):
        _sev1_story(sim, minute)
        sim.tick(at(minute))
    assert sim.sent == SEV1_EXPECTED
    assert plan(POLICY, sim.state, at(90)).next_at is None


def test_sev1_ninety_minutes_event_driven_matches() -> None:
    """Ticks only when the previous tick said so, or when the bot reschedules: same messages."""
    sim = Sim()
    next_at = sim.tick(at(0))
    ticks = [0.0]
    for minute in range(1, 91):
        rescheduled = _sev1_story(sim, minute)
        if rescheduled or (next_at is not None and next_at <= at(minute)):
            assert next_at is None or next_at >= at(minute - 1), "a tick was due between two minutes"
            next_at = sim.tick(at(minute))
            ticks.append(minute)
    assert sim.sent == SEV1_EXPECTED
    # Far fewer evaluations than minutes: the schedule sleeps between due times.
    assert len(ticks) < 45


def test_overdue_reminder_counts_from_when_the_prompt_was_sent() -> None:
    sim = Sim()
    sim.tick(at(17))  # the workers were down from 14 to 17: the prompt goes out late
    assert sim.sent == [(17, "status_prompt", None)]
    assert sim.tick(at(21)) == at(22)
    sim.tick(at(22))
    assert sim.sent[-1] == (22, "status_overdue", None)


def test_only_the_current_cycle_is_caught_up_after_an_outage() -> None:
    sim = Sim(policy=STATUS_ONLY)
    sim.tick(at(0))
    sim.tick(at(41))  # nothing ran between 0 and 41: cycles 15 and 30 are history
    assert sim.sent == [(41, "status_prompt", None)]
    assert plan(STATUS_ONLY, sim.state, at(41)).next_at == at(45)  # next cycle (the reminder would be 46)
    sim.tick(at(45))
    assert sim.sent[-1] == (45, "status_prompt", None)


def test_stage_that_would_fall_into_the_next_cycle_is_skipped() -> None:
    policy = replace(POLICY, cadence={"sev1": timedelta(minutes=8), "sev2": timedelta(minutes=30),
                                      "sev3": timedelta(minutes=60)})
    sim = Sim(policy=policy)
    for minute in range(0, 25):
        sim.tick(at(minute))
    # prompt 8, overdue 13, ping would be 18 > next cycle 16 → skipped
    assert sim.sent == [(8, "status_prompt", None), (13, "status_overdue", None),
                        (16, "status_prompt", None), (21, "status_overdue", None), (24, "status_prompt", None)]


def test_update_after_prompt_cancels_reminder_and_ping() -> None:
    sim = Sim()
    sim.tick(at(15))
    sim.update(at(18))
    for minute in range(18, 33):
        sim.tick(at(minute))
    assert sim.sent == [(15, "status_prompt", None)]
    sim.tick(at(33))
    assert sim.sent[-1] == (33, "status_prompt", None)


def test_no_status_cadence_noise_before_the_first_due_time() -> None:
    result = plan(STATUS_ONLY, CadenceState("sev1", "open", T0), at(14.99))
    assert result.due == () and result.next_at == at(15)


@pytest.mark.parametrize(("severity", "first"), [("sev1", 15), ("sev2", 30), ("sev3", 60)])
def test_cadence_by_severity(severity: str, first: int) -> None:
    assert plan(STATUS_ONLY, CadenceState(severity, "open", T0), at(0)).next_at == at(first)


def test_unknown_severity_gets_the_slowest_cadence() -> None:
    assert plan(STATUS_ONLY, CadenceState("sev9", "open", T0), at(0)).next_at == at(60)


def test_severity_change_moves_the_next_prompt() -> None:
    sim = Sim(severity="sev2", policy=STATUS_ONLY)
    assert sim.tick(at(10)) == at(30)
    sim.severity("sev1")
    assert sim.tick(at(10)) == at(15)
    sim.tick(at(15))
    assert sim.sent == [(15, "status_prompt", None)]
    sim.severity("sev3")  # downgraded mid-cycle: the SEV1 reminder no longer applies
    assert sim.tick(at(16)) == at(60)
    assert sim.sent == [(15, "status_prompt", None)]


def test_upgrade_makes_a_prompt_due_at_once() -> None:
    sim = Sim(severity="sev3")
    sim.tick(at(20))
    sim.severity("sev1")
    sim.tick(at(20))  # reschedule on severity change: the SEV1 cycle started at 15
    assert sim.sent == [(20, "status_prompt", None)]


def test_control_plane_rule_needs_evidence_and_rechecks_every_minute() -> None:
    sim = Sim()
    sim.update(at(29))  # keep the status cadence quiet
    assert sim.tick(at(29)) == at(30)
    assert sim.tick(at(30)) == at(31)  # threshold passed, no evidence: look again in a minute
    sim.signal(Signal.CONTROL_PLANE_FAILING, at(33))
    sim.tick(at(33))
    assert sim.sent == [(33, "escalation_prompt", "control_plane")]


def test_thresholds_are_looked_at_even_without_evidence_yet() -> None:
    """No hook tells the schedule an assessment landed, so the first threshold is a tick."""
    assert plan(POLICY, CadenceState("sev3", "open", T0), at(0)).next_at == at(30)


def test_healthy_control_plane_never_prompts() -> None:
    sim = Sim()
    for minute in range(0, 91):
        if minute % 10 == 0:
            sim.update(at(minute))
        sim.tick(at(minute))
    assert sim.sent == []


def test_etcd_rule_counts_from_the_start_of_the_repair() -> None:
    sim = Sim()
    sim.signal(Signal.ETCD_REPAIR, at(20))
    for minute in range(0, 70):
        if minute % 10 == 0:
            sim.update(at(minute))
        sim.tick(at(minute))
    assert sim.sent == [(65, "escalation_prompt", "etcd_repair")]


def test_etcd_repair_streak_broken_restarts_the_count() -> None:
    sim = Sim(policy=only("etcd_repair"))
    sim.signal(Signal.ETCD_REPAIR, at(0))
    sim.update(at(40))
    sim.tick(at(40))
    sim.signal(Signal.ETCD_REPAIR, None)  # an assessment says etcd is healthy again
    sim.signal(Signal.ETCD_REPAIR, at(42))  # …and broken again
    assert sim.tick(at(46)) == at(55)
    sim.update(at(55))
    assert sim.tick(at(80)) == at(85)
    sim.tick(at(87))
    assert ("escalation_prompt" in [kind for _, kind, _ in sim.sent])
    assert [(m, r) for m, kind, r in sim.sent if kind == "escalation_prompt"] == [(87, "etcd_repair")]


def test_business_pressure_rule() -> None:
    sim = Sim()
    sim.signal(Signal.BUSINESS_PRESSURE, at(5))
    sim.update(at(30))
    sim.tick(at(35))
    assert sim.sent == [(35, "escalation_prompt", "business_pressure")]


def test_snooze_reprompts_after_fifteen_minutes_only_if_still_failing() -> None:
    sim = Sim(policy=only("control_plane"))
    sim.signal(Signal.CONTROL_PLANE_FAILING, at(1))
    sim.update(at(30))
    sim.tick(at(30))
    sim.decide("control_plane", Decision.SNOOZED, at(32))
    assert sim.tick(at(32)) == at(45)  # the status prompt (30+15) and the snooze end (47) → 45 first
    sim.update(at(45))
    assert sim.tick(at(45)) == at(47)
    sim.signal(Signal.CONTROL_PLANE_FAILING, None)  # recovered during the snooze
    assert sim.tick(at(47)) == at(48)
    sim.signal(Signal.CONTROL_PLANE_FAILING, at(49))  # failing again
    sim.tick(at(49))
    assert [(m, r) for m, kind, r in sim.sent] == [(30, "control_plane"), (49, "control_plane")]


def test_snooze_twice() -> None:
    sim = Sim()
    sim.signal(Signal.CONTROL_PLANE_FAILING, at(0))
    for minute in range(0, 91):
        if minute % 10 == 5:
            sim.update(at(minute))
        if minute in (31, 47):
            sim.decide("control_plane", Decision.SNOOZED, at(minute))
        sim.tick(at(minute))
    assert [m for m, kind, _ in sim.sent if kind == "escalation_prompt"] == [30, 46, 62]


def test_ignored_prompt_is_not_repeated() -> None:
    sim = Sim()
    sim.signal(Signal.CONTROL_PLANE_FAILING, at(0))
    for minute in range(0, 91):
        if minute % 10 == 5:
            sim.update(at(minute))
        sim.tick(at(minute))
    assert [(m, r) for m, kind, r in sim.sent if kind == "escalation_prompt"] == [(30, "control_plane")]


@pytest.mark.parametrize("decision", [Decision.DISMISSED, Decision.ESCALATED])
def test_dismiss_or_escalate_ends_that_rule_only(decision: Decision) -> None:
    sim = Sim()
    sim.signal(Signal.CONTROL_PLANE_FAILING, at(0))
    sim.signal(Signal.CUSTOMER_FACING, at(0))
    for minute in range(0, 91):
        if minute % 10 == 5:
            sim.update(at(minute))
        if minute == 31:
            sim.decide("control_plane", decision, at(minute))
        sim.tick(at(minute))
    assert [(m, r) for m, kind, r in sim.sent if kind == "escalation_prompt"] == [
        (30, "control_plane"), (45, "customer_facing")]


def test_mitigated_keeps_status_cadence_but_stops_escalations() -> None:
    sim = Sim()
    sim.signal(Signal.CONTROL_PLANE_FAILING, at(0))
    sim.status("mitigated")
    for minute in range(0, 36):
        sim.tick(at(minute))
    assert sim.sent == [(15, "status_prompt", None), (20, "status_overdue", None), (25, "stakeholder_ping", None),
                        (30, "status_prompt", None), (35, "status_overdue", None)]


def test_resolve_cancels_everything() -> None:
    sim = Sim()
    sim.signal(Signal.CONTROL_PLANE_FAILING, at(0))
    sim.tick(at(15))
    sim.status("resolved")
    for minute in range(16, 91):
        assert sim.tick(at(minute)) is None
    assert sim.sent == [(15, "status_prompt", None)]


def test_reopen_starts_a_fresh_cadence() -> None:
    sim = Sim(policy=STATUS_ONLY)
    sim.status("resolved")
    sim.tick(at(20))
    sim.status("open")
    sim.update(at(50))  # digest() turns the reopening into the cadence's reference
    assert sim.tick(at(50)) == at(65)


def test_token_is_the_same_for_every_evaluator_and_distinct_per_cycle() -> None:
    rule = POLICY.rule("control_plane")
    prompt = Notice(NoticeKind.STATUS_PROMPT, at(15), at(15))
    late_overdue = Notice(NoticeKind.STATUS_OVERDUE, at(22), at(15))
    escalation = Notice(NoticeKind.ESCALATION_PROMPT, at(30), at(30), rule)
    epoch = int(T0.timestamp())
    assert prompt.token("I1") == f"I1:status_prompt:{epoch + 900}"
    assert late_overdue.token("I1") == f"I1:status_overdue:{epoch + 900}"
    assert escalation.token("I1") == f"I1:escalation_prompt:control_plane:{epoch + 1800}"


def test_policy_from_settings_reads_every_threshold() -> None:
    settings = Settings(status_cadence_sev1_minutes=10, status_grace_minutes=3, escalate_control_plane_minutes=20,
                        escalate_etcd_repair_minutes=40, escalate_customer_facing_minutes=50,
                        escalate_business_pressure_minutes=25)
    policy = CadencePolicy.from_settings(settings)
    assert policy.cadence["sev1"] == timedelta(minutes=10) and policy.grace == timedelta(minutes=3)
    assert {r.key: (r.signal, r.anchor, r.after.seconds // 60) for r in policy.rules} == {
        "control_plane": (Signal.CONTROL_PLANE_FAILING, Anchor.OPENED, 20),
        "etcd_repair": (Signal.ETCD_REPAIR, Anchor.SIGNAL, 40),
        "customer_facing": (Signal.CUSTOMER_FACING, Anchor.OPENED, 50),
        "business_pressure": (Signal.BUSINESS_PRESSURE, Anchor.SIGNAL, 25),
    }


# --- digest: the timeline → the planner's state ------------------------------------------------


def _entry(minute: float, kind: str, data: dict | None = None, actor: str = "bot") -> TimelineEntry:
    return TimelineEntry(id=f"{minute}-0", kind=kind, actor=actor, at=at(minute), data=data or {})


def _incident(**overrides: object) -> Incident:
    fields: dict = dict(id="I1", title="API down", severity="sev1", channel_id="C1", channel_name="inc-api",
                        opened_by="U_ALICE", opened_at=T0, commander="U_ALICE")
    fields.update(overrides)
    return Incident(**fields)


ETCD = PatternMatch("control-plane", "Control-plane failure", "cluster-wide", "etcd", ("etcd unhealthy",),
                    ("fix etcd",), root_cause="etcd", layers=("etcd", "apiserver"))
APISERVER = PatternMatch("control-plane", "Control-plane failure", "cluster-wide", "apiserver",
                         ("API server unreachable",), ("fix apiserver",), root_cause="apiserver", layers=("apiserver",))
DNS = PatternMatch("dns-cascade", "DNS cascade", "cluster-wide", "dns", ("coredns down",), ("fix dns",))


def _assessed(minute: float, verdict: Verdict) -> TimelineEntry:
    """The entry ``workers/assess.py`` appends: ``{"snapshot": …, "verdict": Verdict.to_json(), …}``."""
    return _entry(minute, "assessment", {"snapshot": {"checks": []}, "verdict": verdict.to_json(),
                                         "headline": verdict.headline})


def test_digest_reads_updates_sends_decisions_and_assessments() -> None:
    entries = [
        _entry(0, "opened"),
        _assessed(5, Verdict("cluster-wide", "etcd quorum lost", (ETCD,))),
        _assessed(10, Verdict("cluster-wide", "still etcd", (ETCD,))),
        _entry(15, "status_prompt", {"token": "x"}),
        _entry(20, "status_overdue"),
        _entry(22, "status_update", {"text": "Restoring etcd"}, actor="U_ALICE"),
        _entry(25, "stakeholder_ping"),
        _entry(30, "escalation_prompt", {"rule": "control_plane", "due": at(30).timestamp(), "ts": "1.2"}),
        _entry(31, "escalation_decision", {"rule": "control_plane", "decision": "snoozed",
                                           "snoozed_until": at(46).timestamp()}),
        _entry(33, "action", {"description": "cordon node n1", "outcome": "succeeded"}),
        _entry(34, "message", {"text": "chatter"}, actor="U_BOB"),
    ]
    result = digest(_incident(customer_facing=True), entries)
    state = result.state
    assert (state.last_prompt_at, state.last_overdue_at, state.last_update_at, state.last_ping_at) == (
        at(15), at(20), at(22), at(25))
    assert state.signals == {Signal.CONTROL_PLANE_FAILING: at(5), Signal.ETCD_REPAIR: at(5),
                             Signal.CUSTOMER_FACING: T0}
    assert state.escalations["control_plane"] == EscalationState(
        prompted_at=at(30), decision=Decision.SNOOZED, decided_at=at(31), snoozed_until=at(46))
    assert (result.evidence.verdict, result.evidence.assessed_at) == ("still etcd", at(10))
    assert (result.last_update_text, result.last_update_by) == ("Restoring etcd", "U_ALICE")
    assert result.actions == ("cordon node n1: succeeded",)
    assert result.prompts["control_plane"]["ts"] == "1.2"


def test_digest_healthy_assessment_ends_the_failing_streak() -> None:
    entries = [
        _assessed(5, Verdict("cluster-wide", "apiserver down", (APISERVER,))),
        _assessed(10, Verdict("healthy", "healthy")),
        _assessed(12, Verdict("cluster-wide", "apiserver down again", (APISERVER,))),
    ]
    result = digest(_incident(), entries)
    assert result.state.signals == {Signal.CONTROL_PLANE_FAILING: at(12)}
    assert result.evidence.verdict == "apiserver down again"


def test_digest_without_assessment_says_so() -> None:
    result = digest(_incident(), [_entry(0, "opened")])
    assert result.evidence.verdict is None and result.state.signals == {}


def test_digest_single_workload_pattern_is_not_control_plane() -> None:
    entries = [_entry(5, "assessment", {"verdict": {"scope": "component", "patterns": [{"title": "single workload"}]}})]
    result = digest(_incident(), entries)
    assert result.state.signals == {} and result.evidence.verdict == "single workload"


def test_digest_reopen_resets_the_cadence_and_business_pressure_flag() -> None:
    entries = [_entry(30, "status_changed", {"from": "open", "to": "resolved"}),
               _entry(50, "status_changed", {"from": "resolved", "to": "open"})]
    result = digest(_incident(status=Status.OPEN, extra={"business_pressure_since": str(at(3).timestamp())}), entries)
    assert result.state.last_update_at == at(50)
    assert result.state.signals == {Signal.BUSINESS_PRESSURE: at(3)}


def test_digest_reads_the_control_plane_layers_of_real_verdicts() -> None:
    entries = [
        _assessed(2, Verdict("cluster-wide", "Cluster-wide failure: Control-plane failure (apiserver)", (APISERVER,))),
        _assessed(6, Verdict("cluster-wide", "Cluster-wide failure: Control-plane failure (etcd)", (ETCD,))),
        _assessed(9, Verdict("cluster-wide", "Cluster-wide failure: Control-plane failure (etcd)", (ETCD, DNS))),
    ]
    result = digest(_incident(), entries)
    assert result.state.signals == {Signal.CONTROL_PLANE_FAILING: at(2), Signal.ETCD_REPAIR: at(6)}
    assert result.evidence.verdict == "Cluster-wide failure: Control-plane failure (etcd)"
    dns_only = digest(_incident(), [_assessed(3, Verdict("cluster-wide", "Cluster-wide failure: DNS cascade", (DNS,)))])
    assert dns_only.state.signals == {}
    healthy = Verdict("healthy", "No cluster-wide failure: no failure pattern matched")
    assert digest(_incident(), entries + [_assessed(12, healthy)]).state.signals == {}


def test_an_unreachable_apiserver_as_the_verdict_rules_decide_it_starts_the_control_plane_streak() -> None:
    checks = [CheckResult("apiserver", "fail", "unreachable", {"reachable": False, "error": "connection refused"}),
              CheckResult("etcd", "skipped", "not configured", {"configured": False})]
    unreachable = decide(checks)
    assert digest(_incident(), [_assessed(4, unreachable)]).state.signals == {Signal.CONTROL_PLANE_FAILING: at(4)}
