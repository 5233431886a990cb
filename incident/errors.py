"""One exception hierarchy for the whole bot.

Every error a person can see carries a message written for Slack and, where it helps, a hint
saying what to do next. ``bot/`` turns them into ephemeral replies in one place; workers turn
them into channel messages. Callers catch the specific class they can handle.

The words are macros of ``templates/`` like every other text a person reads: the service layer's refusals
in ``refusals.slack.j2`` (``Context.refusal``), the parsers' in ``command_errors.slack.j2``, and those raised
below the service layer (stores, the incident model, the Slack and Kubernetes clients, the classes here) in
``errors.slack.j2`` (mrkdwn, through :func:`error_text`) or, when they carry what another system said and
flow on into a template that escapes them, ``errors.txt.j2`` (plain, :func:`plain_error_text`).
"""

from __future__ import annotations

from typing import Any

TEMPLATE = "errors.slack.j2"
"""The texts of the errors raised below the service layer (mrkdwn)."""
PLAIN_TEMPLATE = "errors.txt.j2"
"""The texts that carry what another system said (plain; escaped where they are shown)."""


def error_text(macro: str, /, **arguments: Any) -> str:
    """One macro of ``templates/errors.slack.j2``, from the bundled templates: these errors are raised where no
    request or settings are at hand (a store, the incident model), so a ``TEMPLATES_DIR`` does not change them."""
    from incident.templates import bundled_text  # incident.templates → incident.settings → this module

    return bundled_text(TEMPLATE, macro, **arguments)


def plain_error_text(macro: str, /, **arguments: Any) -> str:
    """One macro of ``templates/errors.txt.j2`` (plain text; bundled, like :func:`error_text`)."""
    from incident.templates import bundled_text

    return bundled_text(PLAIN_TEMPLATE, macro, **arguments)


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
        super().__init__(plain_error_text("config_problems", problems=problems),
                         hint=plain_error_text("config_problems_hint"))


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
        super().__init__(error_text("slack_refused", method=method, code=code), hint=hint)


class StoreUnavailable(IncidentBotError):
    """Redis (incident state, timeline, queues) cannot be reached; whether the request took effect is not known."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(error_text("store_unavailable", detail=detail), hint=error_text("store_unavailable_hint"))


class AlertPayloadError(IncidentBotError):
    """An Alertmanager notification was malformed or of an unknown version; ``reasons`` lists what is wrong."""

    MAX_REASONS = 10
    """How many problems the message lists (the rest are counted)."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        shown = reasons[:self.MAX_REASONS]
        super().__init__(plain_error_text("alert_payload", reasons=shown, more=len(reasons) - len(shown)),
                         hint=plain_error_text("alert_payload_hint"))
