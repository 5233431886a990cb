"""The ``/k8s`` command grammar: a registry of commands, each declared with its usage and help.

Commands are registered with :meth:`CommandRegistry.command`, which records the usage line and
help text next to the parser, so ``/k8s help`` is generated from the registry and can never drift
from what is actually accepted. Parsing never raises anything but :class:`CommandError`, whose
hint is the right usage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from incident.errors import CommandError
from incident.model import DEFAULT_SEVERITY, SEVERITIES

MAX_TITLE_LENGTH = 150
MAX_TEXT_LENGTH = 3000
USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")

Parser = Callable[[list[str], str], dict[str, Any]]


@dataclass(frozen=True)
class CommandSpec:
    """One command of the grammar."""

    name: str
    usage: str
    help: str
    parse: Parser
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
    """Commands by name; parses text into a :class:`ParsedCommand`."""

    def __init__(self, slash: str = "/k8s") -> None:
        self.slash = slash
        self._specs: dict[str, CommandSpec] = {}

    def command(self, name: str, *, usage: str, help: str, needs_incident: bool = False,
                risky: bool = False) -> Callable[[Parser], Parser]:
        """Decorator registering a parser for ``name`` (one or more words)."""

        def register(parse: Parser) -> Parser:
            if name in self._specs:
                raise ValueError(f"command {name!r} registered twice")
            self._specs[name] = CommandSpec(name, usage, help, parse, needs_incident, risky)
            return parse

        return register

    @property
    def specs(self) -> list[CommandSpec]:
        return list(self._specs.values())

    def get(self, name: str) -> CommandSpec:
        return self._specs[name]

    def usage(self, spec: CommandSpec) -> str:
        return f"`{self.slash} {spec.usage}`"

    def help_text(self) -> str:
        """The help listing, one line per command, generated from the registry."""
        lines = [f"*{self.slash} commands*"]
        lines += [f"• {self.usage(spec)} — {spec.help}" for spec in self._specs.values()]
        return "\n".join(lines)

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
            raise CommandError(
                f"Unknown command `{_shorten(tokens[0])}`.",
                hint=f"Type `{self.slash} help` for the list. {self._suggest(lowered[0])}".strip(),
            )
        args_tokens = tokens[len(best.words):]
        rest = _rest_after(text, len(best.words))
        try:
            return ParsedCommand(best, best.parse(args_tokens, rest))
        except CommandError as error:
            raise CommandError(error.message, hint=f"Usage: {self.usage(best)}") from None

    def _suggest(self, first: str) -> str:
        candidates = sorted({spec.usage for spec in self._specs.values() if spec.words[0].startswith(first[:2])})
        return ("Did you mean: " + ", ".join(f"`{self.slash} {c}`" for c in candidates[:3]) + "?") if candidates else ""


def _shorten(token: str) -> str:
    return token if len(token) <= 30 else token[:29] + "…"


def _rest_after(text: str, word_count: int) -> str:
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
        raise CommandError(f"`{_shorten(token)}` is not a user mention; mention the person with @ so Slack sends their ID.")
    return match.group(1)


def parse_severity(token: str) -> str:
    severity = token.lower()
    if severity not in SEVERITIES:
        raise CommandError(f"Unknown severity `{_shorten(token)}`; use one of {', '.join(SEVERITIES)}.")
    return severity


def require_text(rest: str, what: str, limit: int = MAX_TEXT_LENGTH) -> str:
    if not rest:
        raise CommandError(f"The {what} is missing.")
    if len(rest) > limit:
        raise CommandError(f"The {what} is {len(rest)} characters long; the limit is {limit}.")
    return rest


def no_arguments(tokens: list[str], rest: str) -> dict[str, Any]:
    if tokens:
        raise CommandError(f"This command takes no arguments (got `{_shorten(rest)}`).")
    return {}


def build_registry() -> CommandRegistry:
    """The bot's grammar. Each new command is declared here with its usage and help."""
    registry = CommandRegistry()

    @registry.command("help", usage="help", help="this list")
    def _help(tokens: list[str], rest: str) -> dict[str, Any]:
        return {}

    @registry.command("incident open", usage="incident open [sev1|sev2|sev3] <title>",
                      help=f"open an incident channel (default {DEFAULT_SEVERITY})")
    def _open(tokens: list[str], rest: str) -> dict[str, Any]:
        severity = DEFAULT_SEVERITY
        if tokens and tokens[0].lower() in SEVERITIES:
            severity = tokens[0].lower()
            rest = _rest_after(rest, 1)
        elif tokens and re.fullmatch(r"(?i)sev\d+", tokens[0]):
            parse_severity(tokens[0])
        return {"severity": severity, "title": require_text(rest, "title", MAX_TITLE_LENGTH)}

    @registry.command("incident status", usage="incident status", help="show this incident's state", needs_incident=True)
    def _status(tokens: list[str], rest: str) -> dict[str, Any]:
        return no_arguments(tokens, rest)

    @registry.command("severity", usage="severity <sev1|sev2|sev3>", help="change the severity", needs_incident=True)
    def _severity(tokens: list[str], rest: str) -> dict[str, Any]:
        if len(tokens) != 1:
            raise CommandError("Give exactly one severity.")
        return {"severity": parse_severity(tokens[0])}

    @registry.command("role", usage="role <commander|comms> <@user>", help="assign the incident commander or comms lead",
                      needs_incident=True)
    def _role(tokens: list[str], rest: str) -> dict[str, Any]:
        if len(tokens) != 2:
            raise CommandError("Give a role and a person.")
        role = tokens[0].lower()
        if role not in ("commander", "comms"):
            raise CommandError(f"Unknown role `{_shorten(tokens[0])}`; use commander or comms.")
        return {"role": role, "user": parse_user(tokens[1])}

    @registry.command("update", usage="update <text>", help="post a status update here and to stakeholders",
                      needs_incident=True)
    def _update(tokens: list[str], rest: str) -> dict[str, Any]:
        return {"text": require_text(rest, "update text")}

    @registry.command("impact", usage="impact <customer-facing|internal|pressure-on|pressure-off>",
                      help="mark customer impact or business pressure (drives escalations and the post-mortem)",
                      needs_incident=True)
    def _impact(tokens: list[str], rest: str) -> dict[str, Any]:
        choices = {"customer-facing": {"customer_facing": True}, "internal": {"customer_facing": False},
                   "pressure-on": {"business_pressure": True}, "pressure-off": {"business_pressure": False}}
        if len(tokens) != 1 or tokens[0].lower() not in choices:
            raise CommandError("Say which impact: customer-facing, internal, pressure-on or pressure-off.")
        return choices[tokens[0].lower()]

    @registry.command("mitigate", usage="mitigate [note]", help="mark the impact as stopped (cause not yet fixed)",
                      needs_incident=True)
    def _mitigate(tokens: list[str], rest: str) -> dict[str, Any]:
        return {"note": rest[:MAX_TEXT_LENGTH]}

    @registry.command("resolve", usage="resolve [--override <reason>]",
                      help="validate recovery against the runbook's checklist, then resolve (commander may override)",
                      needs_incident=True)
    def _resolve(tokens: list[str], rest: str) -> dict[str, Any]:
        if not tokens:
            return {"override": None}
        if tokens[0] != "--override":
            raise CommandError(f"Unexpected `{_shorten(rest)}`; resolve takes only `--override <reason>`.")
        return {"override": require_text(_rest_after(rest, 1), "override reason", 500)}

    @registry.command("postmortem", usage="postmortem", help="draft the post-mortem now and post it as a file",
                      needs_incident=True)
    def _postmortem(tokens: list[str], rest: str) -> dict[str, Any]:
        return no_arguments(tokens, rest)

    @registry.command("assess", usage="assess", help="run the 60-second cluster assessment and post the verdict")
    def _assess(tokens: list[str], rest: str) -> dict[str, Any]:
        return no_arguments(tokens, rest)

    from bot.action_commands import register_action_commands
    register_action_commands(registry)
    return registry
