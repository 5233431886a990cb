"""A Slack Web API, Events API, interactivity and Socket Mode emulator for tests and the local demo.

``SlackEmulator`` serves the Web API on loopback, keeps a workspace model, records every call,
injects faults, and plays Slack toward the bot: signed requests to its Request URL, or envelopes
over the Socket Mode WebSocket the bot opened. It is generic: nothing here imports the demo
(``sandbox.demo`` builds on it, never the reverse).
"""

from sandbox.slack.client import Delivery, Response
from sandbox.slack.emulator import SlackEmulator
from sandbox.slack.errors import ApiError, EmulatorError, NotDeliverableError, UnknownObjectError
from sandbox.slack.model import Channel, File, View
from sandbox.slack.socket_link import LinkConnection
from sandbox.slack.webapi import ApiCall

__all__ = [
    "ApiCall", "ApiError", "Channel", "Delivery", "EmulatorError", "File", "LinkConnection", "NotDeliverableError",
    "Response",
    "SlackEmulator", "UnknownObjectError", "View",
]
