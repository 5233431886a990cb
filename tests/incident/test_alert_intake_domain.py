"""The pure side of the Alertmanager intake: the webhook schema, the rules as data, and the deduplication."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from incident.alert_group import alert_changes, still_firing
from incident.alert_payload import parse_notification
from incident.alert_rules import DEFAULT_RULES_YAML, load_rules, parse_rules, rule_problems
from incident.errors import AlertPayloadError, ConfigError
from incident.postmortem import build_report
from incident.model import Incident, Status
from incident.templates import TemplateRenderer
from incident.timeline import EntryKind, TimelineEntry
from tests.alerts.helpers import notification

T0 = datetime(2026, 12, 2, 0, 10, tzinfo=UTC)


def _alert(fingerprint: str, status: str = "firing", starts: datetime = T0, **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": "X", **labels}, "annotations": {},
            "startsAt": starts.isoformat(), "endsAt": (starts + timedelta(minutes=5)).isoformat()
            if status == "resolved" else "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": fingerprint}


def _notification(*alerts: dict[str, Any]) -> Any:
    return parse_notification({**notification(), "alerts": list(alerts)})


# --- the schema ------------------------------------------------------------------------------------------

def test_a_real_notification_parses_with_its_group_and_times() -> None:
    parsed = parse_notification(json.dumps(notification()))
    (alert,) = parsed.alerts
    assert alert.firing and alert.resolved_at is None and alert.starts_at == T0
    assert parsed.group_id == parse_notification(notification()).group_id
    assert parsed.idempotency_key() == parse_notification(json.dumps(notification(), indent=2)).idempotency_key()


def test_every_problem_is_named_with_where_it_is() -> None:
    body = {**notification(version=4), "status": "smouldering",
            "alerts": [{"labels": {}, "startsAt": "yesterday", "fingerprint": "not hex!"}]}
    with pytest.raises(AlertPayloadError) as raised:
        parse_notification(body)
    reasons = "\n".join(raised.value.reasons)
    for where in ("status:", "alerts[0].status:", "alerts[0].labels:", "alerts[0].startsAt:", "alerts[0].fingerprint:"):
        assert where in reasons
    assert "version" not in reasons  # 4 as a number is still version 4


@pytest.mark.parametrize("version", ["3", "5", "", None])
def test_other_versions_are_refused(version: object) -> None:
    with pytest.raises(AlertPayloadError, match="is not supported"):
        parse_notification(notification(version=version))


def test_many_problems_are_counted_not_all_listed() -> None:
    body = {**notification(), "alerts": [{"status": "x"}] * 30}
    with pytest.raises(AlertPayloadError) as raised:
        parse_notification(body)
    assert "more)" in raised.value.message and len(raised.value.reasons) > 10


# --- the rules -----------------------------------------------------------------------------------------

def test_default_rules_open_critical_triage_warnings_record_the_rest() -> None:
    rules = load_rules(None, None)
    critical = _notification(_alert("a1", severity="critical", cluster="prod"), _alert("a2", severity="warning"))
    decision = rules.decide(critical)
    assert (decision.action, decision.severity, decision.cluster) == ("open", "sev1", "prod")
    assert rules.decide(_notification(_alert("b", severity="warning"))).action == "triage"
    assert rules.decide(_notification(_alert("c", severity="info"))).action == "record"
    assert rules.decide(_notification(_alert("d", "resolved", severity="critical"))).action == "record"


def test_rules_from_yaml_with_regexes_a_cluster_label_and_a_title() -> None:
    rules = parse_rules("""
cluster_label: k8s_cluster
title: "{{ labels.alertname }} in {{ labels.namespace }} ({{ count }})"
actions:
  - {match: {team: payments}, match_re: {severity: "crit.*"}, action: open}
  - {match_re: {namespace: "kube-.*"}, action: triage}
default_action: record
severities:
  - {match: {team: payments}, severity: sev1}
default_severity: sev2
""")
    payments = _notification(_alert("p", severity="critical", team="payments", namespace="pay", k8s_cluster="eu-1"))
    decision = rules.decide(payments)
    assert decision == type(decision)("open", "sev1", "X in pay (1)", "eu-1")
    system = rules.decide(_notification(_alert("s", severity="warning", namespace="kube-system")))
    assert (system.action, system.severity, system.cluster) == ("triage", "sev2", "")


def test_a_title_from_a_missing_label_falls_back_and_is_capped() -> None:
    rules = parse_rules("title: '{{ labels.nothing }}'")
    assert rules.decide(_notification(_alert("x"))).title == "X (1 alert)"
    long = parse_rules("title: '{{ labels.alertname * 200 }}'")
    assert len(long.decide(_notification(_alert("x"))).title) == 150


def test_check_config_lists_every_problem_of_the_rules(tmp_path: Path) -> None:
    problems = rule_problems("""
cluster_label: ""
title: "{{ labels.alertname"
actions:
  - {match: {severity: critical}, action: explode}
  - {match_re: {severity: "("}, action: open}
  - {action: triage}
severities: [{match: {a: b}, severity: sev9}]
colour: blue
""", None, triage_channel=None)
    joined = "\n".join(problems)
    for expected in ("cluster_label", "title: not a valid template", "actions.0.action", "actions.1.match_re",
                     "actions.2: a rule needs match or match_re", "severities.0.severity", "colour"):
        assert expected in joined, (expected, joined)
    assert rule_problems("actions: [{match: {a: b}, action: triage}]", None, triage_channel=None) == [
        "ALERT_TRIAGE_CHANNEL is not set, but the alert rules send alerts to triage: set it to the channel ID (C…) "
        "where triage messages go, or change those rules' action."]
    assert rule_problems(None, tmp_path / "missing.yaml", triage_channel="C1")[0].startswith("ALERT_RULES_FILE")
    assert rule_problems("[1, 2]", None, triage_channel="C1") == [
        "ALERT_RULES must be a mapping (cluster_label, title, actions, …), not list"]
    (tmp_path / "rules.yaml").write_text(DEFAULT_RULES_YAML)
    assert rule_problems(None, tmp_path / "rules.yaml", triage_channel="C1") == []


def test_cli_check_config_lists_the_alert_rules_problems(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s",
           "STAKEHOLDER_CHANNEL": "C1", "KUBECONFIG": str(kubeconfig), "ALERTMANAGER_TOKEN": "am-secret",
           "ALERT_RULES": "actions: [{match: {severity: critical}, action: page}]"}
    result = subprocess.run([sys.executable, "-m", "k8s_incident_bot", "check-config", "--mode", "http"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "ALERT_RULES: actions.0.action: Input should be 'open', 'triage' or 'record'" in result.stderr
    assert "Traceback" not in result.stderr and "am-secret" not in result.stderr
    env["ALERT_RULES"] = "actions: [{match: {severity: critical}, action: open}]"
    result = subprocess.run([sys.executable, "-m", "k8s_incident_bot", "check-config", "--mode", "http"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Alerts:      POST /alerts/alertmanager on; 1 action rule(s), default record" in result.stdout
    assert "am-secret" not in result.stdout


def test_invalid_rules_at_run_time_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        load_rules("default_action: shout", None)


# --- deduplication -------------------------------------------------------------------------------------

def _stored(*records: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["fingerprint"]: r for r in records}


def test_repeats_never_fire_twice_and_a_late_retry_cannot_undo_a_resolve() -> None:
    first = alert_changes({}, _notification(_alert("a"), _alert("b")).alerts)
    assert [r["fingerprint"] for r in first.fired] == ["a", "b"] and not first.resolved
    stored = _stored(*first.store.values())
    assert alert_changes(stored, _notification(_alert("a"), _alert("b")).alerts).empty
    resolved = alert_changes(stored, _notification(_alert("a", "resolved"), _alert("b")).alerts)
    assert [r["fingerprint"] for r in resolved.resolved] == ["a"] and not resolved.fired
    stored.update(resolved.store)
    assert alert_changes(stored, _notification(_alert("a"), _alert("b")).alerts).empty  # an older notification, late
    refired = alert_changes(stored, _notification(_alert("a", starts=T0 + timedelta(hours=1))).alerts)
    assert [r["fingerprint"] for r in refired.fired] == ["a"]
    assert [r["fingerprint"] for r in still_firing(list(stored.values()))] == ["b"]


def test_an_alert_first_seen_resolved_is_kept_but_announces_nothing() -> None:
    changes = alert_changes({}, _notification(_alert("z", "resolved")).alerts)
    assert changes.empty and "z" in changes.store


# --- the post-mortem ---------------------------------------------------------------------------------------

def test_the_postmortem_has_detection_acknowledgement_mitigation_and_the_alerts() -> None:
    opened = T0 + timedelta(minutes=2)
    incident = Incident(id="20261202-001", title="KubeAPIDown on prod", severity="sev1", channel_id="C1",
                        channel_name="inc-x", opened_by="alertmanager", opened_at=opened, commander="U_BOB",
                        status=Status.RESOLVED, mitigated_at=opened + timedelta(minutes=20),
                        resolved_at=opened + timedelta(minutes=40))
    record = {"fingerprint": "a1", "status": "firing", "labels": {"alertname": "KubeAPIDown", "cluster": "prod|eu"},
              "annotations": {}, "starts_at": T0.isoformat(), "ends_at": None, "generator_url": "http://prom/x"}

    def entry(kind: str, minutes: int, actor: str, data: dict[str, Any]) -> TimelineEntry:
        return TimelineEntry(str(minutes), kind, actor, opened + timedelta(minutes=minutes), data)

    entries = [
        entry(EntryKind.OPENED, 0, "alertmanager", {"title": incident.title, "severity": "sev1"}),
        entry(EntryKind.ALERTS_LINKED, 0, "alertmanager", {"how": "opened", "title": incident.title, "alerts": 2,
                                                           "firing": 2}),
        entry(EntryKind.ALERT_FIRED, 0, "alertmanager", record),
        entry(EntryKind.ALERT_FIRED, 0, "alertmanager", {**record, "fingerprint": "a2",
                                                        "starts_at": (T0 + timedelta(minutes=1)).isoformat()}),
        entry(EntryKind.MESSAGE, 5, "U_BOB", {"ts": "1.1", "text": "looking"}),
        entry(EntryKind.ALERT_RESOLVED, 30, "alertmanager", {**record, "status": "resolved",
                                                            "ends_at": (opened + timedelta(minutes=30)).isoformat()}),
        entry(EntryKind.ALERTS_FIRING_AT_RESOLVE, 40, "U_BOB", {"count": 1, "alerts": [{"name": "KubeAPIDown"}]}),
    ]
    report = build_report(incident, entries, now=opened + timedelta(hours=1))
    assert report.detected_at == T0
    assert report.time_to_open == timedelta(minutes=2)
    assert report.time_to_acknowledge == timedelta(minutes=7)
    assert report.time_to_mitigate_from_detection == timedelta(minutes=22)
    assert [(a.fingerprint, a.resolved_at is not None) for a in report.alerts] == [("a1", True), ("a2", False)]
    assert report.firing_at_resolve == ["KubeAPIDown"]
    markdown = TemplateRenderer().render("postmortem.md.j2", report=report)
    assert "| Detected (first alert fired) | 2026-12-02 00:10:00 UTC |" in markdown
    assert "time to acknowledge 7m" in markdown and "time to mitigate from detection 22m" in markdown
    assert "### Alerts involved" in markdown and "**still firing**" in markdown
    assert "cluster=prod\\|eu" in markdown  # a label's | does not break the table
    assert "Resolved while 1 linked alert(s) still fired: KubeAPIDown." in markdown
    assert report.key_events[0].kind == "detection"
