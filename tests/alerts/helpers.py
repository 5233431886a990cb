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
