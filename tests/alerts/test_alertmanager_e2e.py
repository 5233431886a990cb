"""The intake end to end with a real Alertmanager: alerts are posted to its API as Prometheus would, it groups
them and sends its real webhook notifications to the bot, real workers process them, the Slack emulator shows
what people would see."""

from __future__ import annotations

from chat.alert_blocks import (
    ACTION_RECOVERY_CHECKLIST,
    ACTION_TRIAGE_ATTACH,
    ACTION_TRIAGE_DISMISS,
    ACTION_TRIAGE_OPEN,
    ATTACH_BLOCK,
    ATTACH_MODAL_CALLBACK,
    ATTACH_SELECT,
)
from incident.alert_group import GroupState
from incident.timeline import EntryKind
from sandbox.alertmanager import LocalAlertmanager, alert
from sandbox.slack import SlackEmulator
from tests.alerts.helpers import buttons, entries, groups, ready_incidents, texts
from persistence.alert_store import AlertStore
from service import alerts
from tests.bot.helpers import ephemeral_texts, wait_until
from tests.fixtures.alertmanager import TRIAGE_CHANNEL
from tests.fixtures.slack import STAKEHOLDER_CHANNEL, RunningBot, both_transports
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


def _triage_message(slack: SlackEmulator, count: int = 1) -> dict:
    wait_until(lambda: len([m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)]) >= count, 60)
    return [m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)][-1]


@both_transports  # in Socket Mode the endpoint is on the probes' HTTP port; the click comes over the WebSocket
def test_a_warning_goes_to_triage_and_open_incident_makes_the_clicker_its_commander(
        slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses, alertmanager: LocalAlertmanager) -> None:
    workers.start()
    alertmanager.post_alerts([alert("NodeNotReady", severity="warning", node=f"ip-10-0-1-{n}") for n in range(3)])
    message = _triage_message(slack)
    assert buttons(message) == [ACTION_TRIAGE_OPEN, ACTION_TRIAGE_ATTACH, ACTION_TRIAGE_DISMISS]
    assert "3 alerts firing" in message["text"] and "NodeNotReady" in message["text"]
    assert not bot_server.services.store.active()  # nothing opened by itself

    (group,) = groups(bot_server)
    slack.click_button("U_BOB", TRIAGE_CHANNEL, message["ts"], ACTION_TRIAGE_OPEN, group.id)
    wait_until(lambda: ready_incidents(bot_server), 30)
    (incident,) = ready_incidents(bot_server)
    assert (incident.opened_by, incident.commander, incident.severity) == ("U_BOB", "U_BOB", "sev2")
    assert len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 3
    (linked,) = entries(bot_server, incident.id, EntryKind.ALERTS_LINKED)
    assert linked["how"] == "opened"
    wait_until(lambda: not buttons(slack.message(TRIAGE_CHANNEL, message["ts"])), 10)
    assert "<@U_BOB> opened incident" in slack.message(TRIAGE_CHANNEL, message["ts"])["text"]

    # A second click on the stale message (its buttons were still shown to someone) changes nothing.
    reply = alerts.open_from_triage(bot_server.services, group.id, "U_ALICE", None)
    assert "already belong to incident" in reply.text
    assert len(bot_server.services.store.active()) == 1

    # /k8s incident status lists the linked alerts and which still fire.
    alertmanager.resolve_alerts([alert("NodeNotReady", severity="warning", node="ip-10-0-1-0")])
    wait_until(lambda: entries(bot_server, incident.id, EntryKind.ALERT_RESOLVED), 30)
    slack.slash_command("U_BOB", incident.channel_id, "incident status")
    wait_until(lambda: any("Alerts:" in t for t in ephemeral_texts(slack)), 10)
    status = next(t for t in ephemeral_texts(slack) if "Alerts:" in t)
    assert "*Alerts:* 3 linked, 2 still firing" in status


def test_attach_links_a_group_to_an_open_incident_and_later_alerts_follow_it(
        slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses, alertmanager: LocalAlertmanager) -> None:
    workers.start()
    slack.slash_command("U_ALICE", "C_GENERAL", "incident open sev2 Checkout is slow")
    wait_until(lambda: ready_incidents(bot_server), 10)
    (incident,) = ready_incidents(bot_server)
    alertmanager.post_alerts([alert("HighLatency", severity="warning", service="checkout")])
    message = _triage_message(slack)
    (group,) = groups(bot_server)

    slack.click_button("U_ALICE", TRIAGE_CHANNEL, message["ts"], ACTION_TRIAGE_ATTACH, group.id)
    wait_until(lambda: any(v.callback_id == ATTACH_MODAL_CALLBACK and v.is_open for v in slack.views.values()), 10)
    view = next(v for v in slack.views.values() if v.callback_id == ATTACH_MODAL_CALLBACK)
    options = view.definition["blocks"][0]["element"]["options"]
    assert [o["value"] for o in options] == [incident.id]
    slack.submit_view("U_ALICE", ATTACH_MODAL_CALLBACK, {ATTACH_BLOCK: {ATTACH_SELECT: {
        "type": "static_select", "selected_option": options[0]}}})
    wait_until(lambda: entries(bot_server, incident.id, EntryKind.ALERTS_LINKED), 10)
    assert entries(bot_server, incident.id, EntryKind.ALERTS_LINKED)[0]["how"] == "attached"
    wait_until(lambda: any("attached the alert group" in t for t in texts(slack, incident.channel_id)), 10)
    wait_until(lambda: not buttons(slack.message(TRIAGE_CHANNEL, message["ts"])), 10)
    assert f"<@U_ALICE> attached these alerts to incident `{incident.id}`" in slack.message(
        TRIAGE_CHANNEL, message["ts"])["text"]  # she opened that incident herself, by hand, before

    # A new alert of the attached group goes to the incident, not to triage.
    alertmanager.post_alerts([alert("HighLatency", severity="warning", service="checkout"),
                              alert("HighLatency", severity="warning", service="checkout", pod="web-2")])
    wait_until(lambda: len(entries(bot_server, incident.id, EntryKind.ALERT_FIRED)) == 2, 30)
    assert len([m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)]) == 0
    assert len(bot_server.services.store.active()) == 1


def test_dismiss_keeps_the_group_recorded_and_quiet(
        slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses, alertmanager: LocalAlertmanager) -> None:
    workers.start()
    alertmanager.post_alerts([alert("DiskPressure", severity="warning", node="n1")])
    message = _triage_message(slack)
    (group,) = groups(bot_server)
    slack.click_button("U_ALICE", TRIAGE_CHANNEL, message["ts"], ACTION_TRIAGE_DISMISS, group.id)
    wait_until(lambda: groups(bot_server)[0].state == GroupState.DISMISSED, 10)
    wait_until(lambda: "Dismissed by <@U_ALICE>" in slack.message(TRIAGE_CHANNEL, message["ts"])["text"], 10)
    posts = len(slack.messages(TRIAGE_CHANNEL))
    alertmanager.post_alerts([alert("DiskPressure", severity="warning", node="n1"),
                              alert("DiskPressure", severity="warning", node="n2")])
    wait_until(lambda: len(AlertStore(bot_server.services.redis, bot_server.services.keys).alerts(group.id)) == 2, 30)
    assert len(slack.messages(TRIAGE_CHANNEL)) == posts
    assert not bot_server.services.store.active()


def test_label_values_cannot_mention_anyone(
        slack: SlackEmulator, bot_server: RunningBot, workers: WorkerProcesses, alertmanager: LocalAlertmanager) -> None:
    workers.start()
    alertmanager.post_alerts([alert("Injected<!channel>", severity="warning", summary="<!here> <@U_BOB> <#C_STAKE>",
                                    team="<!subteam^S_RESP>")])
    message = _triage_message(slack)
    for text in texts(slack, TRIAGE_CHANNEL):
        for mention in ("<!channel>", "<!here>", "<@U_BOB>", "<#C_STAKE>", "<!subteam"):
            assert mention not in text
    assert "Injected&lt;!channel&gt;" in message["text"] and "&lt;!here&gt; &lt;@U_BOB&gt;" in message["text"]
    (group,) = groups(bot_server)
    slack.click_button("U_ALICE", TRIAGE_CHANNEL, message["ts"], ACTION_TRIAGE_OPEN, group.id)
    wait_until(lambda: ready_incidents(bot_server), 30)
    (incident,) = ready_incidents(bot_server)
    wait_until(lambda: any("Opened from Alertmanager" in t for t in texts(slack, incident.channel_id)), 10)
    for channel in (incident.channel_id, STAKEHOLDER_CHANNEL, TRIAGE_CHANNEL):
        for text in texts(slack, channel):
            assert "<!channel>" not in text and "<!here>" not in text and "<@U_BOB>" not in text
