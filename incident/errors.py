"""One exception hierarchy for the whole bot.

Every error a person can see carries a message written for Slack and, where it helps, a hint
saying what to do next. ``bot/`` turns them into ephemeral replies in one place; workers turn
them into channel messages. Callers catch the specific class they can handle.
"""

from __future__ import annotations


class IncidentBotError(Exception):
    """Base class: a failure with a message a responder can act on."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_text(self) -> str:
        """The text shown to the user: the message, then the hint on its own line."""
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class ConfigError(IncidentBotError):
    """The configuration is missing or invalid; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"The configuration has {len(problems)} problem(s):\n{lines}",
            hint="Set them in the environment or in a .env file; see the configuration table in README.md.",
        )


class CommandError(IncidentBotError):
    """A slash command could not be parsed; the hint shows the right usage."""


class NotInIncidentChannel(IncidentBotError):
    """A command that needs an incident was run outside an incident channel."""


class IncidentNotFound(IncidentBotError):
    """No incident with the given id or channel exists."""


class InvalidTransition(IncidentBotError):
    """The incident's state machine does not allow the requested change."""


class NotPermitted(IncidentBotError):
    """The user (or the bot's Kubernetes identity) may not do this."""


class ConfirmationError(IncidentBotError):
    """A confirmation was expired, already used, or clicked by the wrong person."""


class ClusterError(IncidentBotError):
    """The Kubernetes API failed or refused a request."""


class ClusterUnreachable(ClusterError):
    """The Kubernetes API could not be reached within the deadline."""


class ObjectNotFound(ClusterError):
    """A Kubernetes object named in a command does not exist."""


class SlackApiError(IncidentBotError):
    """A Slack Web API call answered ``ok: false``; ``code`` is Slack's error code."""

    def __init__(self, method: str, code: str, *, hint: str | None = None, retry_after: float | None = None) -> None:
        self.method = method
        self.code = code
        self.retry_after = retry_after
        """Seconds Slack asked to wait (``Retry-After`` of a 429), when it said."""
        super().__init__(f"Slack refused {method}: {code}", hint=hint)


class StoreUnavailable(IncidentBotError):
    """Redis (incident state, timeline, queues) cannot be reached; whether the request took effect is not known."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The incident state store (Redis) is unavailable right now, so this request may not have been carried "
            "out." + (f" ({detail})" if detail else ""),
            hint="The bot keeps retrying on its own; check with `/k8s incident status` in a minute before "
                 "repeating a change. Operators: `/readyz` says what is wrong.")


class AlertPayloadError(IncidentBotError):
    """An Alertmanager notification was malformed or of an unknown version; ``reasons`` lists what is wrong."""

    MAX_REASONS = 10
    """How many problems the message lists (the rest are counted)."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        shown = reasons[:self.MAX_REASONS]
        more = f" (and {len(reasons) - len(shown)} more)" if len(reasons) > len(shown) else ""
        super().__init__("Malformed Alertmanager notification: " + "; ".join(shown) + more,
                         hint="The endpoint reads Alertmanager's webhook payload version 4; nothing was stored.")
