"""The refusals of a command's parser, as :class:`CommandError`: one macro each of
``templates/command_errors.slack.j2`` (mrkdwn; what the user typed is passed cut, and escaped there).

Parsers run with no request around them: the bot's registry parses before anything else happens, and the
risky actions' specs read descriptions back in the service layer. So these texts come from the bundled
templates (``bundled_text``) and a ``TEMPLATES_DIR`` does not override them.
"""

from __future__ import annotations

from typing import Any

from incident.errors import CommandError
from incident.templates import bundled_text

TEMPLATE = "command_errors.slack.j2"


def command_text(macro: str, /, **arguments: Any) -> str:
    """The text of one macro of the template (a hint, a usage line)."""
    return bundled_text(TEMPLATE, macro, **arguments)


def command_error(macro: str, /, *, hint: str | None = None, **arguments: Any) -> CommandError:
    """The error to raise: the macro's text as its message, ``hint`` under it."""
    return CommandError(command_text(macro, **arguments), hint=hint)
