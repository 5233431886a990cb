"""The demo page: a small Slack-like web client served by the emulator under ``/ui/``.

:class:`~sandbox.slack.ui.api.DemoPage` mounts the static page (``static/``) and its JSON API on
the emulator's HTTP server; everything the page does goes through the emulator's signed
interactions, so the bot under demo sees exactly what real Slack would send it. Mounted by
:meth:`sandbox.slack.emulator.SlackEmulator.attach_demo`, which ``sandbox.demo`` calls.
"""

from sandbox.slack.ui.api import DemoPage
from sandbox.slack.ui.jobs import Job, JobRunner

__all__ = ["DemoPage", "Job", "JobRunner"]
