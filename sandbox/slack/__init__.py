"""A Slack Web API, Events API and interactivity emulator for tests and the local demo.

``SlackEmulator`` serves the Web API on loopback, keeps a workspace model, records every call,
injects faults, and plays Slack toward the bot with signed requests.
"""

from sandbox.slack.client import Delivery, Response
from sandbox.slack.emulator import SlackEmulator
from sandbox.slack.errors import ApiError, EmulatorError, NotDeliverableError, UnknownObjectError
from sandbox.slack.model import Channel, File, View
from sandbox.slack.webapi import ApiCall

__all__ = [
    "ApiCall", "ApiError", "Channel", "Delivery", "EmulatorError", "File", "NotDeliverableError", "Response",
    "SlackEmulator", "UnknownObjectError", "View",
]
