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
