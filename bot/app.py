"""The Bolt app: thin listeners that parse, ``ack()`` within Slack's 3 seconds, then work.

Every listener acknowledges first and does its Slack/Redis work afterwards (Bolt runs the rest
of the listener after the HTTP response has gone), and every :class:`IncidentBotError` becomes an
ephemeral reply in one place (:func:`_reply_error`). Events API deliveries are de-duplicated by
``event_id`` so Slack's retries never record anything twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.commands import Invocation, run_command
from bot.grammar import CommandRegistry, build_registry
from service import escalation, lifecycle
from service.context import Context
from chat.blocks import ACTION_ASSESS, ACTION_ESCALATE, ACTION_POST_UPDATE, ACTION_RESOLVE
from service.channel_log import record_event
from observability import metrics
from incident.errors import CommandError, IncidentBotError

log = logging.getLogger(__name__)

EVENT_DEDUPE_SECONDS = 24 * 3600
WORK_THREADS = 16
UPDATE_MODAL_CALLBACK = "status_update_modal"
CHANNEL_LOG_EVENTS = ("message", "reaction_added", "reaction_removed", "pin_added", "pin_removed")


def post_ack_pool() -> ThreadPoolExecutor:
    """Where work after ack() runs, never on Bolt's listener threads: a burst of slow commands must not
    keep later ones from being acknowledged within Slack's 3 seconds. Shut it down (waiting) on exit, so
    work already acknowledged to Slack is finished, not dropped."""
    return ThreadPoolExecutor(max_workers=WORK_THREADS, thread_name_prefix="bot-work")


def create_app(services: Context, registry: CommandRegistry | None = None, *,
               work: ThreadPoolExecutor | None = None) -> App:
    """Build the Bolt app wired to ``services``; acknowledged work runs on ``work`` (:func:`post_ack_pool`)."""
    registry = registry or build_registry()
    settings = services.settings
    work = work or post_ack_pool()

    def guarded(respond: Respond, job: Callable[[], str]) -> None:
        work.submit(_guarded, respond, job)

    app = App(
        client=services.slack.web,
        signing_secret=settings.secret("slack_signing_secret"),
        token_verification_enabled=False,
        raise_error_for_unhandled_request=False,
    )

    @app.middleware
    def drop_event_retries(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse | None:
        event_id = body.get("event_id")
        if body.get("type") == "event_callback" and event_id:
            if not services.redis.set(services.keys.seen_event(str(event_id)), "1", nx=True, ex=EVENT_DEDUPE_SECONDS):
                log.info("dropping repeated delivery of event %s", event_id)
                return BoltResponse(status=200, body="")
        return next()

    @app.command(registry.slash)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            parsed = registry.parse(str(command.get("text", "")))
        except CommandError as error:
            metrics.record_command("unparsed", "invalid")
            ack(text=error.user_text())
            return
        ack()
        invocation = Invocation(parsed, str(command["user_id"]), str(command["channel_id"]),
                                command.get("response_url"), command.get("trigger_id"))
        guarded(respond, metrics.counted_command(parsed.name, lambda: run_command(services, registry, invocation).text))

    @app.action(ACTION_RESOLVE)
    def on_resolve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        guarded(respond, lambda: lifecycle.request_resolve(
            services, services.store.get(_action_value(body)), _user(body), None).text)

    @app.action(ACTION_POST_UPDATE)
    def on_post_update(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        from chat.views import status_update_modal

        def open_modal() -> str:
            services.slack.call("views.open", trigger_id=body["trigger_id"],
                                view=status_update_modal(UPDATE_MODAL_CALLBACK, _action_value(body)).to_dict())
            return ""

        guarded(respond, open_modal)

    @app.view(UPDATE_MODAL_CALLBACK)
    def on_update_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        from chat.views import read_status_update

        text = read_status_update(view)
        if not text.strip():
            ack(response_action="errors", errors={"update": "Write what changed, what is next."})
            return
        ack()

        def post() -> str:
            incident = services.store.get(str(view.get("private_metadata")))
            lifecycle.post_status_update(services, incident, text, _user(body))
            return ""

        work.submit(_guarded, _log_reply, post)

    @app.action(ACTION_ASSESS)
    def on_assess(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        from service.assessment import request_assessment

        guarded(respond, lambda: request_assessment(
            services, services.store.get(_action_value(body)), body["channel"]["id"], _user(body)).text)

    @app.action(ACTION_ESCALATE)
    def on_escalate(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        guarded(respond, lambda: escalation.escalate_by_hand(services, services.store.get(_action_value(body)), _user(body)))

    for event_type in CHANNEL_LOG_EVENTS:
        app.event(event_type)(_channel_log_listener(services))

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.exception("unhandled error in a listener: %s", error)

    from bot.schedule_listeners import register_schedule_listeners
    register_schedule_listeners(app, services)
    from bot.action_commands import register_action_listeners
    register_action_listeners(app, services)
    return app


def _channel_log_listener(services: Context) -> Callable[..., None]:
    def listener(event: dict[str, Any]) -> None:
        channel = event.get("channel") or event.get("channel_id") or (event.get("item") or {}).get("channel")
        if not channel:
            return
        incident = services.store.find_by_channel(str(channel))
        if incident is not None:
            record_event(services.store.timeline(incident.id), event)

    return listener


def _guarded(respond: Respond, work: Callable[[], str]) -> None:
    """Run ``work`` and send its text ephemerally; errors become actionable ephemeral replies."""
    try:
        text = work()
    except IncidentBotError as error:
        _reply_error(respond, error.user_text())
        return
    except Exception:  # noqa: BLE001 - a person is waiting for an answer
        reference = uuid.uuid4().hex[:8]
        log.exception("command failed (reference %s)", reference)
        _reply_error(respond, f"Something went wrong on the bot's side (reference `{reference}`). "
                              "Nothing was lost; try again, and report the reference if it persists.")
        return
    if text:
        respond(text=text, response_type="ephemeral", replace_original=False)


def _log_reply(text: str = "", **_: Any) -> None:
    """The reply channel of a modal submission, which has no ``response_url``: the log."""
    log.warning("modal submission could not be completed: %s", text)


def _reply_error(respond: Respond, text: str) -> None:
    try:
        respond(text=f":warning: {text}", response_type="ephemeral", replace_original=False)
    except Exception:  # noqa: BLE001 - the response_url may have expired; the log keeps it
        log.exception("could not deliver an error reply: %s", text)


def _action_value(body: dict[str, Any]) -> str:
    actions = body.get("actions") or []
    if not actions or not actions[0].get("value"):
        raise IncidentBotError("This button carries no incident; it may come from an old message.")
    return str(actions[0]["value"])


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id", "unknown"))
