"""The one way work runs after ``ack()``: on the post-ack pool, its text (or its error) sent back ephemerally.

Slack wants every command, click and submission acknowledged within 3 seconds. Bolt runs a listener on
a small pool of its own threads, so work done there — Redis, the Slack Web API, RQ — delays the next
acknowledgement. :class:`AfterAck` is the single wrapper every listener of the bot uses: the listener
acks, then hands a job to :meth:`AfterAck.run`, which runs it on the post-ack pool
(``bot.app.post_ack_pool``) and turns its result into a reply: its text, an :class:`IncidentBotError`'s
``user_text()`` with a warning sign, Redis being unreachable as :class:`StoreUnavailable`, or, for anything
else, a reference to the log. Buttons are
:class:`ButtonSpec` s (action id + handler), registered through :meth:`AfterAck.button`.

Durable: with an :class:`~service.inbox.Inbox`, :meth:`AfterAck.accept` records the request in Redis
*before* it acknowledges Slack, runs its work inside the entry's scope and finishes the entry after
it. A process that dies in between leaves the entry to another replica's keeper, which calls
:meth:`AfterAck.replay`: the same kind of work is rebuilt from the recorded body (:meth:`AfterAck.kind`)
and its answer goes to the request's ``response_url``. When Redis cannot take the record, Slack's
acknowledgement itself says the store is unavailable, and nothing was started.
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
from slack_sdk.webhook import WebhookClient

from incident.errors import IncidentBotError, StoreUnavailable
from incident.templates import TemplateRenderer
from service import inbox as inbox_scope
from service.inbox import Inbox, InboxEntry

if TYPE_CHECKING:
    from service.lifecycle import Reply
    from service.context import Context

log = logging.getLogger(__name__)

ReplyTo = Callable[..., Any]
"""Where the answer goes: Bolt's ``respond`` (the response_url), or a logger for a modal submission."""
ButtonHandler = Callable[["Context", dict[str, Any]], "Reply"]
"""``(services, the interactivity payload)`` → the ephemeral reply (empty text: none)."""
WorkBuilder = Callable[[dict[str, Any]], Callable[[], str]]
"""A kind of acknowledged request: its recorded body (JSON) → the work, whose text is the reply."""


@dataclass(frozen=True)
class ButtonSpec:
    """One button of the bot's messages: its ``action_id`` and what a click does."""

    action_id: str
    handle: ButtonHandler
    durable: bool = True
    """Recorded in the inbox and replayed after a crash; ``False`` for a click whose work needs its
    ``trigger_id`` (``views.open``), which Slack honours for 3 s only — a replay could not open the view."""


class AfterAck:
    """Runs acknowledged work on ``pool`` and answers the person who asked."""

    def __init__(self, pool: ThreadPoolExecutor, templates: TemplateRenderer, inbox: Inbox | None = None) -> None:
        self.pool = pool
        self.templates = templates
        self.inbox = inbox
        self.kinds: dict[str, WorkBuilder] = {}

    def run(self, reply_to: ReplyTo, work: Callable[[], str]) -> None:
        """Queue ``work`` on the pool; its text is sent to ``reply_to`` ephemerally (not recorded: for work
        that a replay could not repeat)."""
        self.pool.submit(self.guarded, reply_to, work)

    def kind(self, name: str, build: WorkBuilder) -> None:
        """Declare a kind of durable request: :meth:`accept` and :meth:`replay` rebuild its work with ``build``."""
        self.kinds[name] = build

    def accept(self, ack: Ack, kind: str, body: dict[str, Any], reply_to: ReplyTo) -> None:
        """Record the request (``body`` must be JSON), acknowledge Slack, run its work after the ack."""
        if self.inbox is None:
            ack()
            self.run(reply_to, self.kinds[kind](body))
            return
        try:
            entry = self.inbox.record({"kind": kind, "body": body})
        except RedisError as error:  # nothing was recorded, so nothing may be promised: the ack says so
            log.warning("the incident state store is unavailable; not accepting a %s: %s", kind, error)
            ack(text=self._error_text(StoreUnavailable(type(error).__name__).user_text()))
            return
        ack()
        self._submit(entry, reply_to)

    def replay(self, entry: InboxEntry) -> None:
        """Run an entry whose first process died (the keeper's callback); the answer goes to its response_url."""
        body = entry.body.get("body") or {}
        url = body.get("response_url")
        self._submit(entry, response_url_reply(str(url)) if url else log_reply)

    def _submit(self, entry: InboxEntry, reply_to: ReplyTo) -> None:
        try:
            self.pool.submit(self._run_entry, entry, reply_to)
        except RuntimeError:  # the pool is shutting down: another replica replays it after the lease
            assert self.inbox is not None
            self.inbox.release(entry)

    def _run_entry(self, entry: InboxEntry, reply_to: ReplyTo) -> None:
        inbox = self.inbox
        assert inbox is not None
        recorded = entry.body
        build = self.kinds.get(str(recorded.get("kind")))
        if build is None:
            log.error("inbox: no kind %r here; dropping entry %s: %s", recorded.get("kind"), entry.id, entry.raw[:300])
            inbox.finish(entry)
            return
        body = dict(recorded.get("body") or {})

        def in_scope() -> str:
            with inbox_scope.scope(entry):
                return build(body)()

        self.guarded(reply_to, in_scope, entry=entry)

    def button(self, services: Context, spec: ButtonSpec) -> Callable[..., None]:
        """A Bolt listener for ``spec``: record (when durable), ack at once, run the handler after the ack."""
        kind = f"button:{spec.action_id}"
        self.kind(kind, lambda body: lambda: spec.handle(services, body).text)

        def listener(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
            if spec.durable:
                self.accept(ack, kind, body, respond)
                return
            ack()
            self.run(respond, lambda: spec.handle(services, body).text)

        return listener

    def guarded(self, reply_to: ReplyTo, work: Callable[[], str], entry: InboxEntry | None = None) -> None:
        """Run ``work`` and send its text ephemerally; errors become actionable ephemeral replies.

        ``entry``: the work's inbox entry, finished once the work ran (before the reply: a lost reply is
        better than work done twice). Not when Redis failed under it: then the entry stays and is replayed
        when Redis is back, as the reply says.
        """
        try:
            text = work()
        except IncidentBotError as error:
            self._finish(entry)
            self._reply_error(reply_to, error.user_text())
            return
        except RedisError as error:  # the store is down: say so, never a false "done" nor a traceback
            log.warning("the incident state store is unavailable: %s", error)
            if entry is not None and self.inbox is not None:
                self.inbox.release(entry)
            self._reply_error(reply_to, StoreUnavailable(type(error).__name__).user_text())
            return
        except Exception:  # noqa: BLE001 - a person is waiting for an answer
            reference = uuid.uuid4().hex[:8]
            log.exception("command failed (reference %s)", reference)
            self._finish(entry)
            self._reply_error(reply_to, self.templates.render("bot_failed.slack.j2", reference=reference))
            return
        self._finish(entry)
        if text:
            reply_to(text=text, response_type="ephemeral", replace_original=False)

    def _finish(self, entry: InboxEntry | None) -> None:
        if entry is None or self.inbox is None:
            return
        try:
            if not self.inbox.finish(entry):
                log.warning("inbox: %s was taken over by another replica while it ran here", entry.id)
        except RedisError:  # it stays recorded; a replay finds its effects made and adds nothing
            log.warning("inbox: could not finish %s (Redis unavailable); it will be replayed", entry.id)

    def _error_text(self, text: str) -> str:
        """``text`` is mrkdwn already (error messages escape what the user typed)."""
        return self.templates.render("bot_error.slack.j2", message=Markup(text))

    def _reply_error(self, reply_to: ReplyTo, text: str) -> None:
        try:
            reply_to(text=self._error_text(text), response_type="ephemeral", replace_original=False)
        except Exception:  # noqa: BLE001 - the response_url may have expired; the log keeps it
            log.exception("could not deliver an error reply: %s", text)


def response_url_reply(url: str) -> ReplyTo:
    """The reply channel of a replayed request: its ``response_url`` (Slack keeps it valid for 30 minutes)."""
    client = WebhookClient(url)

    def reply(**message: Any) -> None:
        response = client.send_dict(message)
        if response.status_code >= 300:
            log.warning("response_url answered %s: %s", response.status_code, response.body[:200])

    return reply


def log_reply(text: str = "", **_: Any) -> None:
    """The reply channel of a modal submission, which has no ``response_url``: the log."""
    log.warning("modal submission could not be completed: %s", text)


def button_value(services: Context, body: dict[str, Any], missing: str) -> str:
    """The clicked button's ``value`` (an incident or action id); ``missing`` names the refusal
    (``templates/refusals.slack.j2``) when it has none."""
    actions = body.get("actions") or []
    if not actions or not actions[0].get("value"):
        raise IncidentBotError(services.refusal(missing))
    return str(actions[0]["value"])


def clicked_by(body: dict[str, Any]) -> str:
    """The Slack user id of whoever clicked or submitted."""
    return str((body.get("user") or {}).get("id", "unknown"))
