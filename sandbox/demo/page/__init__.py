"""The demo page: a small Slack-like web client, served on the emulator's HTTP server under ``/ui/``.

:class:`~sandbox.demo.page.api.DemoPage` mounts the static page (``static/``) and its JSON API on
the emulator's server; everything the page does goes through the emulator's interactions, so the bot
under demo sees exactly what real Slack would send it (signed HTTP or Socket Mode envelopes, as the
app is configured). The page belongs to the demo: it imports the emulator, the emulator never
imports it. :class:`~sandbox.demo.stack.DemoStack` mounts it with the scenario panel; tests of the
API alone use :func:`attach_page`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.demo.page.api import DemoPage, DemoStackLike, ScenarioLike
from sandbox.demo.page.jobs import Job, JobRunner
from sandbox.slack import SlackEmulator

__all__ = ["DemoPage", "Job", "JobRunner", "attach_page"]


def attach_page(emulator: SlackEmulator, stack: DemoStackLike | None = None,
                scenarios: Mapping[str, ScenarioLike] | None = None) -> DemoPage:
    """Serve the page under ``/ui/`` on a started emulator (the panel only when ``stack`` is given)."""
    page = DemoPage(emulator, stack, scenarios)
    page.mount(emulator.server)
    return page
