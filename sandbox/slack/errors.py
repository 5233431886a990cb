"""Exceptions of the Slack emulator.

Two families: :class:`ApiError` is Slack's own ``ok: false`` answer, raised inside Web API
method handlers and turned into a response body by the dispatcher; :class:`EmulatorError` and
its subclasses are mistakes of the test or demo driving the emulator (clicking a button that
is not on the message, submitting a view that was never opened), raised to the caller.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Web API failure as Slack reports it: HTTP 200 with ``{"ok": false, "error": code}``.

    ``extra`` is merged into the response body (Slack adds ``errors``, ``needed``,
    ``response_metadata.messages`` and the like to some failures).
    """

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra

    @classmethod
    def invalid_arguments(cls, *messages: str) -> ApiError:
        """Slack's answer to malformed or missing arguments, with its ``[ERROR]`` messages."""
        return cls("invalid_arguments", response_metadata={"messages": [f"[ERROR] {m}" for m in messages]})


class EmulatorError(Exception):
    """The emulator was asked to do something real Slack could not have done."""


class UnknownObjectError(EmulatorError, LookupError):
    """A user, channel, message or view named by the caller does not exist in the workspace."""


class NotDeliverableError(EmulatorError):
    """A request toward the bot cannot be sent (no ``request_url`` configured)."""
