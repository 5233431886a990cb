"""The demo: the whole sandbox behind one URL — stack, scenario catalogue and the Slack-like page.

Layers, one way: the test bed (``sandbox.cluster``, ``sandbox.scenarios``, Redis, the fault proxy)
and the Slack emulator (``sandbox.slack``) are generic and import nothing from here; the demo builds
on both. ``tests/sandbox/test_layers.py`` fails on an import the other way.

- :mod:`sandbox.demo.stack` — :class:`DemoStack` (start/stop everything; HTTP or Socket Mode bot) and
  :func:`run_demo` (``k8s-incident-bot demo`` / ``drill``);
- :mod:`sandbox.demo.catalogue` — :data:`SCENARIOS` offered by the panel and the drills, :class:`ScenarioPanel`;
- :mod:`sandbox.demo.page` — the page and its JSON API, mounted on the emulator's HTTP server.
"""

from sandbox.demo.catalogue import SCENARIOS, ScenarioPanel, ScenarioSpec
from sandbox.demo.stack import (
    BOT_TOKEN, DEMO_PEOPLE, DEMO_USER, MODE_VARIABLE, RESPONDERS, SIGNING_SECRET, SLACK_MODES, STAKEHOLDER_CHANNEL,
    DemoStack, run_demo,
)

__all__ = [
    "BOT_TOKEN", "DEMO_PEOPLE", "DEMO_USER", "MODE_VARIABLE", "RESPONDERS", "SCENARIOS", "SIGNING_SECRET",
    "SLACK_MODES", "STAKEHOLDER_CHANNEL", "DemoStack", "ScenarioPanel", "ScenarioSpec", "run_demo",
]
