"""The ``/k8s`` command grammar: command specs that carry their parser *and* their handler, and the registry.

A :class:`CommandSpec` is everything about one command — the words, the usage line and help text that
``/k8s help`` shows, the parser of its arguments, the handler that runs it, whether it needs an incident
channel. A :class:`CommandRegistry` is an explicit object built from a list of specs (``bot.commands.build_registry``
builds the bot's), so help is generated from what is actually accepted and tests can build their own.
Nothing registers itself on import. This module imports no other ``bot`` module at run time: the
commands import it, never the reverse.

Parsing never raises anything but :class:`CommandError`, whose hint is the right usage. Every text it
produces is Slack mrkdwn, a macro of ``templates/command_errors.slack.j2`` (:mod:`incident.command_errors`):
usage lines such as ``cordon node <name>`` are escaped (Slack would read ``<name>`` as a link) and what the
user typed is cut (:func:`incident.kube_syntax.cut`), then escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from incident.command_errors import command_error, command_text
from incident.errors import CommandError
from incident.kube_syntax import cut
from incident.model import SEVERITIES

if TYPE_CHECKING:
    from service.lifecycle import Reply
    from service.context import Context
    from incident.model import Incident
    from incident.templates import TemplateRenderer

MAX_TITLE_LENGTH = 150
MAX_TEXT_LENGTH = 3000
USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")

Parser = Callable[[list[str], str], dict[str, Any]]
"""``(tokens after the command's words, the raw rest of the text)`` → the arguments."""


@dataclass(frozen=True)
class Invocation:
    """Who ran a command where, and what they asked for."""

    command: ParsedCommand
    user_id: str
    channel_id: str
    response_url: str | None = None
    trigger_id: str | None = None


Handler = Callable[["Context", Invocation, "Incident | None"], "Reply"]
"""Runs a parsed command: ``(services, invocation, the channel's incident or None)`` → the ephemeral reply."""


@dataclass(frozen=True)
class CommandSpec:
    """One command of the grammar, with the handler that runs it."""

    name: str
    usage: str
    """Raw (``cordon node <name>``); :meth:`CommandRegistry.usage` escapes it for Slack."""
    help: str
    parse: Parser
    handle: Handler
    needs_incident: bool = False
    risky: bool = False

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.name.split())


@dataclass(frozen=True)
class ParsedCommand:
    """A command recognised in the text, with its arguments."""

    spec: CommandSpec
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name


class CommandRegistry:
    """Commands by name, in help order; parses text into a :class:`ParsedCommand`."""

    def __init__(self, specs: Iterable[CommandSpec], slash: str = "/k8s") -> None:
        self.slash = slash
        self._specs: dict[str, CommandSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"command {spec.name!r} registered twice")
            self._specs[spec.name] = spec
        if "help" not in self._specs:
            raise ValueError("a registry needs a help command (empty text runs it)")

    @property
    def specs(self) -> list[CommandSpec]:
        return list(self._specs.values())

    def get(self, name: str) -> CommandSpec:
        return self._specs[name]

    def usage(self, spec: CommandSpec) -> str:
        """The usage line as mrkdwn code: `` `/k8s cordon node &lt;name&gt;` ``."""
        return command_text("usage", slash=self.slash, usage=spec.usage)

    def help_text(self, templates: TemplateRenderer) -> str:
        """The help listing, one line per command, generated from the registry (``templates/command_help.slack.j2``)."""
        commands = [(f"{self.slash} {spec.usage}", spec.help) for spec in self._specs.values()]
        return templates.render("command_help.slack.j2", slash=self.slash, commands=commands)

    def parse(self, text: str) -> ParsedCommand:
        """Parse the text typed after the slash command."""
        tokens = text.split()
        if not tokens:
            return ParsedCommand(self._specs["help"], {})
        lowered = [t.lower() for t in tokens]
        best: CommandSpec | None = None
        for spec in self._specs.values():
            words = spec.words
            if tuple(lowered[: len(words)]) == words and (best is None or len(words) > len(best.words)):
                best = spec
        if best is None:
            hint = command_text("unknown_command_hint", slash=self.slash, suggestions=self._suggest(lowered[0]))
            raise command_error("unknown_command", got=cut(tokens[0], 30), hint=hint)
        args_tokens = tokens[len(best.words):]
        rest = rest_after(text, len(best.words))
        try:
            return ParsedCommand(best, best.parse(args_tokens, rest))
        except CommandError as error:
            raise CommandError(error.message,
                               hint=command_text("usage_hint", slash=self.slash, usage=best.usage)) from None

    def _suggest(self, first: str) -> list[str]:
        """Up to three usages of commands whose first word starts like ``first``."""
        return sorted({spec.usage for spec in self._specs.values() if spec.words[0].startswith(first[:2])})[:3]


# --- helpers for parsers ----------------------------------------------------------------------------


def rest_after(text: str, word_count: int) -> str:
    """The raw text after the first ``word_count`` words, whitespace inside kept."""
    remaining = text.strip()
    for _ in range(word_count):
        parts = remaining.split(None, 1)
        remaining = parts[1] if len(parts) > 1 else ""
    return remaining.strip()


def parse_user(token: str) -> str:
    """A Slack user mention (``<@U123>`` or ``<@U123|name>``) → user id."""
    match = USER_MENTION.match(token)
    if not match:
        raise command_error("not_a_user", got=cut(token, 30))
    return match.group(1)


def parse_severity(token: str) -> str:
    severity = token.lower()
    if severity not in SEVERITIES:
        raise command_error("unknown_severity", got=cut(token, 30), severities=SEVERITIES)
    return severity


def require_text(rest: str, what: str, limit: int = MAX_TEXT_LENGTH) -> str:
    if not rest:
        raise command_error("text_missing", what=what)
    if len(rest) > limit:
        raise command_error("text_too_long", what=what, length=len(rest), limit=limit)
    return rest


def no_arguments(tokens: list[str], rest: str) -> dict[str, Any]:
    if tokens:
        raise command_error("no_arguments", got=cut(rest, 30))
    return {}
