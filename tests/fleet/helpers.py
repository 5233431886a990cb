"""Helpers of the fleet tests."""

from __future__ import annotations

from incident.model import Incident
from sandbox.slack import SlackEmulator
from tests.bot.helpers import ephemeral_texts, open_incident, wait_until
from tests.fixtures.slack import RunningBot


def opened(slack: SlackEmulator, bot: RunningBot) -> Incident:
    """The incident the last `/k8s incident open` created, once its opener's answer arrived too: a command typed
    next then never mistakes that late answer for its own."""
    incident = open_incident(slack, bot)
    count = len(list(bot.services.store.iter_all()))
    wait_until(lambda: sum("Opened incident" in t for t in ephemeral_texts(slack)) >= count)
    return incident
