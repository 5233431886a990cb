"""Rendering of every human-readable text from jinja2 templates in ``templates/``.

A configured directory (``TEMPLATES_DIR``) overrides bundled templates file by file. Slack
templates (``*.slack.j2``) escape every interpolated value for mrkdwn unless it was produced by
a filter that builds Slack syntax on purpose (``mention``, ``channel``, ``link``), so a title like
``<!channel>`` can never ping anyone. Markdown templates (``*.md.j2``) and plain-text ones (``*.txt.j2``:
texts that a Slack template later shows, and so escapes, such as the executors' dry-run summaries) are
rendered as written.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
"""The bundled templates (a ``TEMPLATES_DIR`` overrides them file by file)."""


def _escape_slack(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Markup):
        return str(value)
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str | None) -> Markup:
    """``<@U123>`` for a user id (empty for none); an actor that is no Slack user (``alertmanager``, which
    opens incidents from alerts) is shown as its escaped name."""
    if not user_id:
        return Markup("_nobody_")
    if not is_user_id(user_id):
        return Markup(_escape_slack(user_id))
    return Markup(f"<@{user_id}>")


def is_user_id(value: str) -> bool:
    """Whether ``value`` looks like a Slack user id (``U…``/``W…``, upper-case letters, digits)."""
    return bool(re.fullmatch(r"[UW][A-Z0-9_]+", value))


def channel_link(channel_id: str | None) -> Markup:
    return Markup(f"<#{channel_id}>") if channel_id else Markup("")


def usergroup(group_id: str | None) -> Markup:
    return Markup(f"<!subteam^{group_id}>") if group_id else Markup("")


def link(url: str | None, label: str) -> Markup:
    if not url:
        return Markup(_escape_slack(label))
    return Markup(f"<{url}|{_escape_slack(label)}>")


def duration(value: timedelta | float | None) -> str:
    """``1h 05m`` / ``12m`` / ``45s`` for a timedelta or seconds."""
    if value is None:
        return "n/a"
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def utc(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    return value.strftime(fmt) if value else "n/a"


class TemplateRenderer:
    """Renders bundled or overridden templates."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(str(DEFAULT_TEMPLATES_DIR))]
        if override_dir is not None:
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        common: dict[str, Any] = {"loader": ChoiceLoader(loaders), "undefined": StrictUndefined,
                                  "trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": False}
        self._slack = Environment(finalize=_escape_slack, autoescape=False, **common)
        self._markdown = Environment(autoescape=False, **common)
        for env in (self._slack, self._markdown):
            env.filters.update(mention=mention, channel=channel_link, usergroup=usergroup, duration=duration, utc=utc)
            env.globals.update(link=link)

    def precompile(self) -> int:
        """Compile every template now (a worker does, before it forks a work horse per job: each horse then
        renders without compiling); returns how many."""
        names = [name for name in self._slack.list_templates() if name.endswith(".j2")]
        for name in names:
            (self._slack if name.endswith(".slack.j2") else self._markdown).get_template(name)
        return len(names)

    def render(self, name: str, **context: Any) -> str:
        """Render ``templates/<name>`` (Slack escaping for ``*.slack.j2``)."""
        env = self._slack if name.endswith(".slack.j2") else self._markdown
        return env.get_template(name).render(**context).strip()

    def macro(self, name: str, macro: str, /, **arguments: Any) -> str:
        """Call the macro ``macro`` of ``templates/<name>``: one text of a file that holds a family of them
        (``kube_actions.txt.j2``), escaped like :meth:`render` would by the file's suffix."""
        return self.macro_exact(name, macro, **arguments).strip()

    def macro_exact(self, name: str, macro: str, /, **arguments: Any) -> str:
        """:meth:`macro` without the strip: for a text that may start or end with a value (a check's summary
        that ends in a space, a heading line over an empty list), which must reach Slack as it is. The
        macro itself then writes no whitespace of its own around its text."""
        env = self._slack if name.endswith(".slack.j2") else self._markdown
        return str(getattr(env.get_template(name).module, macro)(**arguments))


@lru_cache(maxsize=4)
def renderer_for(override_dir: Path | None) -> TemplateRenderer:
    """A cached renderer per override directory."""
    return TemplateRenderer(override_dir)


def bundled_text(template: str, macro: str, /, **arguments: Any) -> str:
    """One macro of a bundled template, whatever ``TEMPLATES_DIR`` says: the words of errors raised where no
    request or settings are at hand (a store, the incident model, a parser, a client)."""
    return renderer_for(None).macro(template, macro, **arguments)
