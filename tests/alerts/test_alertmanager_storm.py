"""An alert storm, an Alertmanager restart and a bot Alertmanager cannot reach, all with the real Alertmanager:
one incident or one triage message per group, nothing doubled, nothing lost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.server import BackgroundServer, build_wsgi_app
from incident.alert_group import GroupState
from incident.settings import Settings
from incident.timeline import EntryKind
from persistence.alert_store import AlertStore
from service.context import Context
from sandbox.alertmanager import LocalAlertmanager, alert
from sandbox.ports import free_port
from sandbox.slack import SlackEmulator
from tests.alerts.helpers import buttons, entries, groups, ready_incidents
from tests.bot.helpers import wait_until
from tests.fixtures.alertmanager import ALERTMANAGER_TOKEN, TRIAGE_CHANNEL
from tests.fixtures.slack import RunningBot
from tests.fixtures.workers import WorkerProcesses

GROUPS, PER_GROUP, CRITICAL_GROUPS = 50, 10, 10


def _storm() -> list[dict]:
    """500 alerts in 50 groups (alertname × cluster): the first 10 groups critical, the other 40 warnings."""
    return [alert(f"Storm{g:02d}", severity="critical" if g < CRITICAL_GROUPS else "warning", cluster=f"c{g % 5}",
                  pod=f"web-{n}") for g in range(GROUPS) for n in range(PER_GROUP)]


def test_a_storm_of_500_alerts_in_50_groups_gives_one_incident_or_triage_message_per_group(
        slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses, alertmanager: LocalAlertmanager) -> None:
    workers.start()
    workers.start()  # two workers: notifications of different groups are processed side by side
    storm = _storm()
    alertmanager.post_alerts(storm)
    store = AlertStore(bot_server.services.redis, bot_server.services.keys)

    def settled() -> bool:
        if len(groups(bot_server)) < GROUPS or len(ready_incidents(bot_server)) < CRITICAL_GROUPS:
            return False
        if sum(len(store.alerts(g.id)) for g in groups(bot_server)) < len(storm):
            return False
        return len([m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)]) >= GROUPS - CRITICAL_GROUPS

    wait_until(settled, 240, interval=0.5)
    incidents = ready_incidents(bot_server)
    assert len(incidents) == CRITICAL_GROUPS
    assert Counter(g.state for g in groups(bot_server)) == {GroupState.INCIDENT: CRITICAL_GROUPS,
                                                            GroupState.TRIAGE: GROUPS - CRITICAL_GROUPS}
    triage = [m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)]
    assert len(triage) == GROUPS - CRITICAL_GROUPS
    assert len({m["blocks"][-1]["block_id"] for m in triage}) == len(triage)  # one per group
    for incident in incidents:
        wait_until(lambda: len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) >= PER_GROUP, 60)
        fired = entries(bot_server, incident.id, EntryKind.ALERT_FIRED)
        assert len(fired) == PER_GROUP
        assert len({e["fingerprint"] for e in fired}) == PER_GROUP
    assert sorted(i.title.split(" ")[0] for i in incidents) == [f"Storm{g:02d}" for g in range(CRITICAL_GROUPS)]


def test_alertmanager_restarted_midway_doubles_nothing(
        slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses, alertmanager: LocalAlertmanager) -> None:
    workers.start()
    firing = [alert("EtcdNoLeader", member=f"etcd-{n}") for n in range(2)]
    alertmanager.post_alerts(firing)
    wait_until(lambda: ready_incidents(bot_server), 60)
    (incident,) = ready_incidents(bot_server)
    wait_until(lambda: len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 2, 30)

    alertmanager.restart()  # its alerts are gone (in memory); its notification log is on disk
    later = alert("EtcdNoLeader", member="etcd-2")
    alertmanager.post_alerts([*firing, later])  # Prometheus re-sends what still fires, plus a new one
    wait_until(lambda: len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 3, 60)
    alertmanager.resolve_alerts([*firing, later])
    wait_until(lambda: len(entries(bot_server, incident.id, EntryKind.ALERT_RESOLVED)) == 3, 60)
    assert len(ready_incidents(bot_server)) == 1
    assert len(groups(bot_server)) == 1
    assert len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 3
    assert sum("Opened from Alertmanager" in m["text"] for m in slack.messages(incident.channel_id)) == 1


@pytest.mark.cluster  # Alertmanager is built from source (this test starts its own, not the fixture's)
def test_alertmanager_retries_until_the_bot_is_reachable(
        slack: SlackEmulator, bot_settings: Settings, workers: WorkerProcesses, tmp_path: Path) -> None:
    port = free_port()
    manager = LocalAlertmanager(webhook_url=f"http://127.0.0.1:{port}/alerts/alertmanager", token=ALERTMANAGER_TOKEN,
                                workdir=tmp_path / "alertmanager")
    services = Context.from_settings(bot_settings)
    manager.start()
    try:
        manager.post_alerts([alert("KubeletDown", node="n1")])
        wait_until(lambda: manager.notifications_failed() > 0, 60)  # nobody listens yet: its delivery fails
        app = build_wsgi_app(bot_settings, services)
        server = BackgroundServer(app, host="127.0.0.1", port=port, threads=4, name="bot-http").start()
        try:
            workers.start()
            store = services.store
            wait_until(lambda: [i for i in store.iter_all() if i.stakeholder_ts], 120)
            (incident,) = list(store.iter_all())
            fired = [e.data["labels"]["node"] for e in store.timeline(incident.id).iter_entries({"alert_fired"})]
            assert fired == ["n1"]
        finally:
            server.stop()
            app.drain(timeout=None)
    finally:
        manager.stop()
