"""``POST /alerts/alertmanager`` over real HTTP (and in Socket Mode, where it is served too): bad input is refused
with a clear status and reason and stores nothing; a good notification is queued once, its retries only
acknowledged. The processing itself runs in this process here; with the real Alertmanager in the e2e tests."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import requests
from rq import Queue

from bot.alert_intake import ALERTS_PATH, MAX_BODY_BYTES, AlertIntake
from incident.settings import Settings
from incident.errors import IncidentBotError
from incident.model import Status
from incident.timeline import EntryKind
from service import alerts, lifecycle
from service.context import Context
from sandbox.slack import SlackEmulator
from tests.alerts.helpers import buttons, groups, notification, texts
from tests.bot.helpers import wait_until
from tests.fixtures.alertmanager import ALERTMANAGER_TOKEN, TRIAGE_CHANNEL
from tests.fixtures.slack import RunningBot, both_transports

AUTH = {"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"}


def _post(bot: RunningBot, body: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return requests.post(bot.url + ALERTS_PATH, data=data, timeout=30,
                         headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)})


def _nothing_stored(bot: RunningBot) -> None:
    redis = bot.services.redis
    assert not redis.keys(f"{bot.services.keys.prefix}:alert*")
    assert Queue(bot.services.keys.queue_name("default"), connection=redis).count == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ALERTMANAGER_TOKEN}"},
                                     {"Authorization": "Bearer"}])
def test_a_missing_or_wrong_token_is_401_and_stores_nothing(bot_server: RunningBot, headers: dict[str, str]) -> None:
    answer = _post(bot_server, notification(), headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    _nothing_stored(bot_server)


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (json.dumps(notification(version="5")).encode(), 400, "version '5' is not supported"),
    (json.dumps({k: v for k, v in notification().items() if k != "version"}).encode(), 400, "version: field required"),
    (json.dumps({**notification(), "alerts": []}).encode(), 400, "alerts: List should have at least 1 item"),
    (json.dumps({**notification(), "alerts": [{"status": "burning"}]}).encode(), 400, "alerts[0].status"),
    (b"\xff\xfe", 400, "not valid JSON"),
])
def test_malformed_notifications_are_400_with_the_reason_and_store_nothing(
        bot_server: RunningBot, body: bytes, status: int, reason: str) -> None:
    answer = _post(bot_server, body)
    assert answer.status_code == status
    assert reason in answer.json()["error"]
    _nothing_stored(bot_server)


def test_a_10_mb_body_is_refused_unread_and_stores_nothing(bot_server: RunningBot) -> None:
    answer = _post(bot_server, b"x" * (10 * 1024 * 1024))
    assert answer.status_code == 413
    answer = _post(bot_server, b" " * (MAX_BODY_BYTES + 1))
    assert answer.status_code == 413
    chunked = requests.post(bot_server.url + ALERTS_PATH, data=(b"x" * 65536 for _ in range(40)), timeout=30,
                            headers={"Content-Type": "application/json", **AUTH})  # no Content-Length: 2.5 MiB
    assert chunked.status_code == 413
    _nothing_stored(bot_server)


def test_only_post_is_accepted(bot_server: RunningBot) -> None:
    answer = requests.get(bot_server.url + ALERTS_PATH, headers=AUTH, timeout=10)
    assert answer.status_code == 405
    _nothing_stored(bot_server)


def test_without_a_token_configured_the_endpoint_does_not_exist(bot_settings: Settings) -> None:
    services = Context.from_settings(bot_settings.model_copy(update={"alertmanager_token": None}))
    seen: list[str] = []
    body = json.dumps(notification()).encode()
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
               "HTTP_AUTHORIZATION": AUTH["Authorization"], "wsgi.input": io.BytesIO(body)}
    AlertIntake(services)(environ, lambda status, headers: seen.append(status))
    assert seen == ["404 Not Found"]


@both_transports
def test_a_notification_is_queued_once_and_its_retries_are_only_acknowledged(bot_server: RunningBot) -> None:
    first = _post(bot_server, notification())
    assert first.status_code == 200 and first.json()["status"] == "queued"
    again = _post(bot_server, notification())  # Alertmanager retrying after a lost answer
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    queue = Queue(bot_server.services.keys.queue_name("default"), connection=bot_server.services.redis)
    assert queue.count == 1
    changed = _post(bot_server, notification(pod="web-2"))  # the group's next notification is new work
    assert changed.json()["status"] == "queued" and queue.count == 2
    _post(bot_server, notification(), {"Authorization": "Bearer wrong"})
    scrape = requests.get(bot_server.url + "/metrics", timeout=10).text
    for status in ("200", "401"):
        assert f'k8s_incident_bot_alert_notifications_total{{status="{status}"}}' in scrape


def test_label_values_are_escaped_in_what_the_job_posts(slack: SlackEmulator, bot_server: RunningBot) -> None:
    payload = notification(team="<!channel>", owner="<@U_BOB>")
    payload["alerts"][0]["annotations"]["summary"] = "<!here> it broke"
    payload["alerts"][0]["generatorURL"] = "http://x|<!channel>"  # no link is made of a URL Slack would misread
    result = alerts.process_notification(bot_server.services, payload)
    assert result["state"] == "triage"
    wait_until(lambda: [m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)], 10)
    for text in texts(slack, TRIAGE_CHANNEL):
        assert "<!channel>" not in text and "<!here>" not in text and "<@U_BOB>" not in text
    assert "&lt;!here&gt; it broke" in texts(slack, TRIAGE_CHANNEL)[0]
    # The same notification again (an RQ retry of the job) adds nothing.
    alerts.process_notification(bot_server.services, payload)
    assert len(groups(bot_server)) == 1
    assert len([m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)]) == 1


def test_resolving_by_hand_while_alerts_fire_is_said_in_the_channel_and_recorded(
        slack: SlackEmulator, bot_server: RunningBot) -> None:
    services = bot_server.services
    result = alerts.process_notification(services, notification(severity="critical"))
    assert result["state"] == "incident"
    incident = services.store.get(result["incident"])
    assert incident.opened_by == "alertmanager" and incident.severity == "sev1"
    lifecycle.change_status(services, incident, Status.RESOLVED, "U_ALICE")
    wait_until(lambda: any("resolved while 1 linked alert still fires" in t for t in texts(slack, incident.channel_id)), 10)
    (entry,) = services.store.timeline(incident.id).entries({EntryKind.ALERTS_FIRING_AT_RESOLVE})
    assert entry.data["count"] == 1 and entry.data["alerts"][0]["name"] == "HighErrorRate"
    status = lifecycle.incident_status(services, services.store.get(incident.id)).text
    assert "*Alerts:* 1 linked, 1 still firing" in status and "HighErrorRate" in status


def _firing(starts_at: str, **labels: str) -> dict[str, Any]:
    payload = notification(**labels)
    payload["alerts"][0]["startsAt"] = starts_at
    return payload


def _resolved(payload: dict[str, Any]) -> dict[str, Any]:
    resolved = json.loads(json.dumps(payload))
    resolved["status"] = "resolved"
    resolved["alerts"][0].update(status="resolved", endsAt="2026-12-02T00:30:00Z")
    return resolved


def test_the_same_group_firing_again_next_month_is_a_new_incident(slack: SlackEmulator, bot_server: RunningBot) -> None:
    services = bot_server.services
    first = _firing("2026-12-02T00:10:00Z", severity="critical")
    opened = alerts.process_notification(services, first)
    alerts.process_notification(services, _resolved(first))
    old = services.store.get(opened["incident"])
    lifecycle.change_status(services, old, Status.RESOLVED, "U_ALICE")

    again = alerts.process_notification(services, _firing("2027-01-05T03:00:00Z", severity="critical"))
    assert again["episode"] == 2 and again["incident"] != opened["incident"]
    new = services.store.get(again["incident"])
    (fired,) = services.store.timeline(new.id).entries({EntryKind.ALERT_FIRED})
    assert fired.data["starts_at"] == "2027-01-05T03:00:00+00:00"  # detection is this episode's, not last month's
    assert "*Alerts:*" not in lifecycle.incident_status(services, services.store.get(old.id)).text
    assert len(services.store.timeline(old.id).entries({EntryKind.ALERT_FIRED})) == 1  # its history stays


def test_a_dismissed_group_is_asked_about_again_only_after_it_had_resolved(
        slack: SlackEmulator, bot_server: RunningBot) -> None:
    services = bot_server.services
    first = _firing("2026-12-02T00:10:00Z")
    triaged = alerts.process_notification(services, first)
    alerts.dismiss(services, triaged["group"], "U_ALICE", None)
    more = json.loads(json.dumps(first))
    more["alerts"].append({**first["alerts"][0], "fingerprint": "aaaa1111", "labels": {
        **first["alerts"][0]["labels"], "pod": "web-2"}})
    assert alerts.process_notification(services, more)["state"] == "dismissed"  # same episode: stays dismissed
    alerts.process_notification(services, {**_resolved(more), "alerts": [
        {**a, "status": "resolved", "endsAt": "2026-12-02T00:30:00Z"} for a in more["alerts"]]})
    assert alerts.process_notification(services, _firing("2026-12-09T08:00:00Z"))["state"] == "triage"
    wait_until(lambda: len([m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)]) == 2, 10)


def test_a_recorded_group_opens_an_incident_when_a_critical_alert_joins_it(bot_server: RunningBot) -> None:
    services = bot_server.services
    info = _firing("2026-12-02T00:10:00Z", severity="info")
    assert alerts.process_notification(services, info)["state"] == "recorded"
    joined = json.loads(json.dumps(info))
    joined["alerts"].append({**info["alerts"][0], "fingerprint": "cccc2222", "labels": {
        **info["alerts"][0]["labels"], "severity": "critical"}})
    result = alerts.process_notification(services, joined)
    assert result["state"] == "incident"
    incident = services.store.get(result["incident"])
    assert incident.severity == "sev1"
    assert len(services.store.timeline(incident.id).entries({EntryKind.ALERT_FIRED})) == 2


def test_attaching_to_a_resolved_or_unknown_incident_is_refused_and_changes_nothing(bot_server: RunningBot) -> None:
    services = bot_server.services
    triaged = alerts.process_notification(services, notification())
    opened = lifecycle.open_incident(services, user_id="U_ALICE", severity="sev2", title="Checkout slow")
    assert "Opened incident" in opened.text
    (incident,) = services.store.iter_all()
    lifecycle.change_status(services, incident, Status.RESOLVED, "U_ALICE")
    with pytest.raises(IncidentBotError, match="already resolved"):
        alerts.attach(services, triaged["group"], incident.id, "U_ALICE", None)
    with pytest.raises(IncidentBotError, match="does not exist"):
        alerts.attach(services, triaged["group"], "20991231-999", "U_ALICE", None)
    assert groups(bot_server)[0].state == "triage"
    assert not services.store.timeline(incident.id).entries({EntryKind.ALERTS_LINKED})


def test_a_group_that_resolves_in_triage_says_so_and_its_next_firing_asks_again(
        slack: SlackEmulator, bot_server: RunningBot) -> None:
    services = bot_server.services
    first = _firing("2026-12-02T00:10:00Z")
    triaged = alerts.process_notification(services, first)
    assert alerts.process_notification(services, _resolved(first))["state"] == "recorded"
    wait_until(lambda: any("resolved before anyone decided" in t for t in texts(slack, TRIAGE_CHANNEL)), 10)
    stale = alerts.open_from_triage(services, triaged["group"], "U_ALICE", None)  # the old message's button
    assert "Nothing to decide" in stale.text and not services.store.active()
    again = alerts.process_notification(services, _firing("2026-12-02T06:00:00Z"))
    assert (again["state"], again["episode"]) == ("triage", 2)
    wait_until(lambda: len([m for m in slack.messages(TRIAGE_CHANNEL) if buttons(m)]) == 2, 10)
