"""The intake end to end with a real Alertmanager: alerts are posted to its API as Prometheus would, it groups
them and sends its real webhook notifications to the bot, real workers process them, the Slack emulator shows
what people would see."""

from __future__ import annotations

from chat.alert_blocks import ACTION_RECOVERY_CHECKLIST
from incident.alert_group import GroupState
from incident.timeline import EntryKind
from sandbox.alertmanager import LocalAlertmanager, alert
from sandbox.slack import SlackEmulator
from tests.alerts.helpers import buttons, entries, groups, ready_incidents, texts
from tests.bot.helpers import wait_until
from tests.fixtures.slack import RunningBot
from tests.fixtures.workers import WorkerProcesses


def test_a_critical_group_opens_one_incident_and_its_alerts_join_the_timeline_once(
        slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses, alertmanager: LocalAlertmanager) -> None:
    workers.start()
    first = [alert("KubeAPIDown", summary="apiserver unreachable", instance=f"10.0.0.{n}") for n in (1, 2)]
    alertmanager.post_alerts(first)
    wait_until(lambda: ready_incidents(bot_server), 60)
    (incident,) = ready_incidents(bot_server)
    assert incident.severity == "sev1"
    assert incident.title == "KubeAPIDown on prod: apiserver unreachable (2 alerts)"
    assert incident.opened_by == "alertmanager" and incident.commander is None
    assert incident.extra.get("alert_cluster") == "prod"
    wait_until(lambda: len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 2, 30)

    # Prometheus re-sends the same alerts every evaluation, and a third one joins the group.
    third = alert("KubeAPIDown", summary="apiserver unreachable", instance="10.0.0.3")
    alertmanager.post_alerts([*first, third])
    wait_until(lambda: len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 3, 30)
    wait_until(lambda: any("(new)" in t for t in texts(slack, incident.channel_id)), 30)
    sent = alertmanager.notifications_sent()
    alertmanager.post_alerts([*first, third])  # nothing new: Alertmanager sends nothing, the bot adds nothing
    assert len(ready_incidents(bot_server)) == 1
    assert len(groups(bot_server)) == 1

    # Everything resolves: the channel is asked to run the recovery checklist, whose button starts /k8s resolve.
    alertmanager.resolve_alerts([*first, third])
    wait_until(lambda: len(entries(bot_server, incident.id, EntryKind.ALERT_RESOLVED)) == 3, 30)
    wait_until(lambda: any(ACTION_RECOVERY_CHECKLIST in buttons(m) for m in slack.messages(incident.channel_id)), 30)
    assert alertmanager.notifications_sent() > sent
    prompt = next(m for m in slack.messages(incident.channel_id) if ACTION_RECOVERY_CHECKLIST in buttons(m))
    assert "all linked alerts resolved (3)" in prompt["text"]
    slack.click_button("U_ALICE", incident.channel_id, prompt["ts"], ACTION_RECOVERY_CHECKLIST, incident.id)
    wait_until(lambda: entries(bot_server, incident.id, EntryKind.RESOLVE_REQUESTED), 10)
    # The normal resolve path: the validation assessment runs (this test's kubeconfig reaches no cluster), so the
    # checklist fails and the incident stays open — alerts clearing is evidence, not proof.
    wait_until(lambda: entries(bot_server, incident.id, EntryKind.RESOLVE_CHECK), 120)
    (check,) = entries(bot_server, incident.id, EntryKind.RESOLVE_CHECK)
    assert check["passed"] is False
    assert bot_server.services.store.get(incident.id).status == "open"
    assert len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 3
    assert [g.state for g in groups(bot_server)] == [GroupState.INCIDENT]
