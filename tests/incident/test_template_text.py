"""Slack templates write no raw ``<`` or ``>`` of their own: Slack reads ``<reason>`` as a link and shows
nothing. Literal usage in a template is written ``&lt;reason&gt;``; values are escaped by the renderer."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def test_no_raw_angle_brackets_in_slack_templates() -> None:
    offenders = {}
    for path in sorted(TEMPLATES.glob("*.slack.j2")):
        literal = JINJA.sub("", path.read_text())
        lines = [line for line in literal.splitlines() if "<" in line or ">" in line]
        if lines:
            offenders[path.name] = lines
    assert len(list(TEMPLATES.glob("*.slack.j2"))) > 10
    assert not offenders, offenders


def test_the_postmortem_summary_post_escapes_pattern_names() -> None:
    from types import SimpleNamespace

    from incident.templates import renderer_for

    render = renderer_for(None).render
    text = render("postmortem_posted.slack.j2", incident=SimpleNamespace(id="inc-1"), minutes=61.6, actions=2,
                  assessments=3, patterns=["dns <cascade>"])
    assert text == (":page_facing_up: Post-mortem draft for `inc-1`: 62 min, 2 action(s), 3 assessment(s); "
                    "hypothesis: dns &lt;cascade&gt;.")
    assert render("postmortem_posted.slack.j2", incident=SimpleNamespace(id="inc-1"), minutes=0, actions=0,
                  assessments=0, patterns=[]).endswith("hypothesis: no pattern identified.")
