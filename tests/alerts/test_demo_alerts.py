"""The demo's *Alerts* part: a scenario's alerts (what kube-prometheus' rules would fire) go through the real
Alertmanager to the bot — the critical one opens an incident, the warning goes to triage — and resolve again."""

from __future__ import annotations

from types import SimpleNamespace

from incident.timeline import EntryKind
from sandbox.alertmanager import LocalAlertmanager
from sandbox.demo.catalogue import SCENARIOS, ScenarioPanel
from sandbox.slack import SlackEmulator
from tests.alerts.helpers import buttons, entries, ready_incidents
from tests.bot.helpers import wait_until
from tests.fixtures.alertmanager import TRIAGE_CHANNEL
from tests.fixtures.slack import RunningBot
from tests.fixtures.workers import WorkerProcesses


def test_every_scenario_names_alerts_a_real_cluster_would_fire() -> None:
    for spec in SCENARIOS.values():
        assert spec.alerts, spec.key
        for alert in spec.alerts:
            assert alert.severity in ("critical", "warning") and alert.name[0].isupper() and alert.summary


def test_the_panel_fires_and_resolves_a_scenarios_alerts_through_alertmanager(
        slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses, alertmanager: LocalAlertmanager) -> None:
    workers.start()
    panel = ScenarioPanel(SimpleNamespace(alertmanager=alertmanager))  # type: ignore[arg-type]
    assert panel.fire_alerts("dns-cascade") == "fired CoreDNSDown (critical), KubeDeploymentReplicasMismatch (warning)"
    wait_until(lambda: ready_incidents(bot_server), 60)
    (incident,) = ready_incidents(bot_server)
    assert incident.title == "CoreDNSDown on sandbox: CoreDNS has disappeared from Prometheus target discovery."
    wait_until(lambda: [m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)], 30)
    assert "KubeDeploymentReplicasMismatch" in [m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)][0]["text"]

    assert panel.fire_alerts("dns-cascade").startswith("fired")  # still firing: Prometheus re-sends, nothing new
    assert panel.resolve_alerts("dns-cascade") == "resolved 2 alert(s) of " + SCENARIOS["dns-cascade"].label
    wait_until(lambda: entries(bot_server, incident.id, EntryKind.ALERT_RESOLVED), 30)
    assert len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 1
    assert panel.resolve_alerts("dns-cascade").endswith("no alerts firing")
