"""The one way work runs after ``ack()``: on the post-ack pool, its text (or its error) sent back ephemerally.

Slack wants every command, click and submission acknowledged within 3 seconds. Bolt runs a listener on
a small pool of its own threads, so work done there — Redis, the Slack Web API, RQ — delays the next
acknowledgement. :class:`AfterAck` is the single wrapper every listener of the bot uses: the listener
acks, then hands a job to :meth:`AfterAck.run`, which runs it on the post-ack pool
(``bot.app.post_ack_pool``) and turns its result into a reply: its text, an :class:`IncidentBotError`'s
``user_text()`` with a warning sign, Redis being unreachable as :class:`StoreUnavailable`, or, for anything
else, a reference to the log. Buttons are
:class:`ButtonSpec` s (action id + handler), registered through :meth:`AfterAck.button`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from redis.exceptions import RedisError
from slack_bolt import Ack, Respond

from incident.errors import IncidentBotError, StoreUnavailable
from incident.templates import TemplateRenderer

if TYPE_CHECKING:
    from service.lifecycle import Reply
    from service.context import Context

log = logging.getLogger(__name__)

ReplyTo = Callable[..., Any]
"""Where the answer goes: Bolt's ``respond`` (the response_url), or a logger for a modal submission."""
ButtonHandler = Callable[["Context", dict[str, Any]], "Reply"]
"""``(services, the interactivity payload)`` → the ephemeral reply (empty text: none)."""


@dataclass(frozen=True)
class ButtonSpec:
    """One button of the bot's messages: its ``action_id`` and what a click does."""

    action_id: str
    handle: ButtonHandler


class AfterAck:
    """Runs acknowledged work on ``pool`` and answers the person who asked."""

    def __init__(self, pool: ThreadPoolExecutor, templates: TemplateRenderer) -> None:
        self.pool = pool
        self.templates = templates

    def run(self, reply_to: ReplyTo, work: Callable[[], str]) -> None:
        """Queue ``work`` on the pool; its text is sent to ``reply_to`` ephemerally."""
        self.pool.submit(self.guarded, reply_to, work)

    def button(self, services: Context, spec: ButtonSpec) -> Callable[..., None]:
        """A Bolt listener for ``spec``: ack at once, run the handler after the ack."""

        def listener(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
            ack()
            self.run(respond, lambda: spec.handle(services, body).text)

        return listener

    def guarded(self, reply_to: ReplyTo, work: Callable[[], str]) -> None:
        """Run ``work`` and send its text ephemerally; errors become actionable ephemeral replies."""
        try:
            text = work()
        except IncidentBotError as error:
            self._reply_error(reply_to, error.user_text())
            return
        except RedisError as error:  # the store is down: say so, never a false "done" nor a traceback
            log.warning("the incident state store is unavailable: %s", error)
            self._reply_error(reply_to, StoreUnavailable(type(error).__name__).user_text())
            return
        except Exception:  # noqa: BLE001 - a person is waiting for an answer
            reference = uuid.uuid4().hex[:8]
            log.exception("command failed (reference %s)", reference)
            self._reply_error(reply_to, self.templates.render("bot_failed.slack.j2", reference=reference))
            return
        if text:
            reply_to(text=text, response_type="ephemeral", replace_original=False)

    def _reply_error(self, reply_to: ReplyTo, text: str) -> None:
        """``text`` is mrkdwn already (error messages escape what the user typed)."""
        try:
            reply_to(text=self.templates.render("bot_error.slack.j2", message=Markup(text)), response_type="ephemeral",
                     replace_original=False)
        except Exception:  # noqa: BLE001 - the response_url may have expired; the log keeps it
            log.exception("could not deliver an error reply: %s", text)


def log_reply(text: str = "", **_: Any) -> None:
    """The reply channel of a modal submission, which has no ``response_url``: the log."""
    log.warning("modal submission could not be completed: %s", text)


def button_value(body: dict[str, Any], missing: str) -> str:
    """The clicked button's ``value`` (an incident or action id); ``missing`` is the error when it has none."""
    actions = body.get("actions") or []
    if not actions or not actions[0].get("value"):
        raise IncidentBotError(missing)
    return str(actions[0]["value"])


def clicked_by(body: dict[str, Any]) -> str:
    """The Slack user id of whoever clicked or submitted."""
    return str((body.get("user") or {}).get("id", "unknown"))
