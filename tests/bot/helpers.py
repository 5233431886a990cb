"""Small helpers for end-to-end tests against the emulator."""

from __future__ import annotations

from collections.abc import Callable

from incident.model import Incident
from sandbox.slack import SlackEmulator
from tests.fixtures.slack import RunningBot
from sandbox.waiting import poll


def wait_until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> None:
    """Poll until ``condition()`` is truthy; fail with a clear message after ``timeout``."""
    poll(condition, timeout, "the condition", interval=interval)


TRANSPORT_METHODS = frozenset({"apps.connections.open"})
"""Web API calls a transport makes for itself (Socket Mode's connection URL), not the bot's work."""


def method_sequence(slack: SlackEmulator) -> list[str]:
    """The bot's Web API calls in order, without the transport's own."""
    return [call.method for call in slack.calls if call.method not in TRANSPORT_METHODS]


def ephemeral_texts(slack: SlackEmulator) -> list[str]:
    return [str(message.get("text", "")) for message in slack.ephemeral]


def open_incident(slack: SlackEmulator, bot: RunningBot, timeout: float = 10.0) -> Incident:
    """Wait for the incident the last `/k8s incident open` created, with its set-up done."""
    store = bot.services.store

    def ready() -> Incident | None:
        incidents = list(store.iter_all())
        if incidents and incidents[-1].stakeholder_ts:
            return incidents[-1]
        return None

    wait_until(ready, timeout)
    incident = ready()
    assert incident is not None
    return incident
