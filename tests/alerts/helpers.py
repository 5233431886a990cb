"""What the alert tests read back: the bot's incidents, alert groups, timeline entries and messages."""

from __future__ import annotations

from typing import Any

from incident.alert_group import AlertGroup
from incident.model import Incident
from persistence.alert_store import AlertStore
from sandbox.slack import SlackEmulator
from tests.fixtures.slack import RunningBot


def groups(bot: RunningBot) -> list[AlertGroup]:
    return list(AlertStore(bot.services.redis, bot.services.keys).iter_groups())


def ready_incidents(bot: RunningBot) -> list[Incident]:
    """Incidents whose set-up finished (the stakeholder announcement went out)."""
    return [i for i in bot.services.store.iter_all() if i.stakeholder_ts]


def entries(bot: RunningBot, incident_id: str, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in bot.services.store.timeline(incident_id).iter_entries({kind})]


def texts(slack: SlackEmulator, channel: str) -> list[str]:
    """Every message's text and its blocks' mrkdwn texts, oldest first (``plain_text`` — the header's title — is
    never parsed for mentions by Slack, so it may hold a title's characters as they are)."""
    out = []
    for message in slack.messages(channel):
        out.append(str(message.get("text", "")))
        for block in message.get("blocks") or []:
            text = block.get("text")
            if isinstance(text, dict) and text.get("type") == "mrkdwn":
                out.append(str(text.get("text", "")))
    return out


def buttons(message: dict[str, Any]) -> list[str]:
    """The action ids of a message's buttons."""
    return [element.get("action_id") for block in message.get("blocks") or [] if block.get("type") == "actions"
            for element in block.get("elements") or []]


def notification(*, version: Any = "4", severity: str = "warning", **alert_labels: str) -> dict[str, Any]:
    """A notification exactly as Alertmanager 0.35's webhook sends one."""
    labels = {"alertname": "HighErrorRate", "severity": severity, "cluster": "prod", **alert_labels}
    return {
        "receiver": "k8s-incident-bot", "status": "firing", "version": version,
        "groupKey": '{}:{alertname="HighErrorRate", cluster="prod"}', "truncatedAlerts": 0,
        "groupLabels": {"alertname": "HighErrorRate", "cluster": "prod"}, "commonLabels": labels,
        "commonAnnotations": {"summary": "5xx above 5%"}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "5xx above 5%"},
                    "startsAt": "2026-12-02T00:10:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph?g0.expr=rate", "fingerprint": "4f3c2b1a0d9e8f7c"}],
    }
