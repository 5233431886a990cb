"""The Bolt app: thin listeners that parse, ``ack()`` within Slack's 3 seconds, then work.

Every listener hands the request to the one after-ack wrapper (:class:`bot.after_ack.AfterAck`),
which records it in the durable inbox (when serving), acknowledges, runs the work on the post-ack
pool — never on Bolt's listener threads — and turns its text or its :class:`IncidentBotError` into an
ephemeral reply. The listeners
come from explicit lists: the command registry (``bot.commands.build_registry``), the incident
header's buttons and the risky actions' buttons (:class:`bot.after_ack.ButtonSpec` s). Events API
deliveries are de-duplicated by ``event_id`` so Slack's retries never record anything twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_bolt.response import BoltResponse

from bot.action_commands import action_buttons
from bot.alert_buttons import ATTACH_KIND, alert_buttons, attach_submission, attach_submission_work
from bot.after_ack import AfterAck, ButtonSpec, clicked_by, log_reply
from bot.commands import UPDATE_MODAL_CALLBACK, build_registry, incident_buttons, run_command, submit_status_update
from bot.grammar import CommandRegistry, Invocation
from bot.schedule_listeners import escalation_buttons
from bot.recovery_buttons import recovery_buttons
from chat.alert_blocks import ATTACH_MODAL_CALLBACK
from chat.views import read_status_update
from incident.errors import CommandError
from observability import metrics
from service.channel_log import record_event
from service.context import Context
from service.inbox import Inbox

log = logging.getLogger(__name__)

EVENT_DEDUPE_SECONDS = 24 * 3600
WORK_THREADS = 16
CHANNEL_LOG_EVENTS = ("message", "reaction_added", "reaction_removed", "pin_added", "pin_removed")


def post_ack_pool() -> ThreadPoolExecutor:
    """Where work after ack() runs, never on Bolt's listener threads: a burst of slow commands must not
    keep later ones from being acknowledged within Slack's 3 seconds. Shut it down (waiting) on exit, so
    work already acknowledged to Slack is finished, not dropped."""
    return ThreadPoolExecutor(max_workers=WORK_THREADS, thread_name_prefix="bot-work")


def buttons() -> tuple[ButtonSpec, ...]:
    """Every button the app answers."""
    return (*incident_buttons(), *action_buttons(), *escalation_buttons(), *alert_buttons(), *recovery_buttons())


def create_app(services: Context, registry: CommandRegistry | None = None, *,
               work: ThreadPoolExecutor | None = None, after_ack: AfterAck | None = None) -> App:
    """Build the Bolt app wired to ``services``; acknowledged work runs on ``work`` (:func:`post_ack_pool`),
    recorded in the inbox first when ``after_ack`` has one (:func:`durable_after_ack`)."""
    registry = registry or build_registry()
    settings = services.settings
    after_ack = after_ack or AfterAck(work or post_ack_pool(), services.templates)
    after_ack.kind(COMMAND_KIND, _command_work(services, registry))
    after_ack.kind(UPDATE_MODAL_KIND, lambda body: _modal_update_work(services, body))
    after_ack.kind(ATTACH_KIND, lambda body: attach_submission_work(services, body))

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
        after_ack.accept(ack, COMMAND_KIND, {name: command.get(name) for name in COMMAND_FIELDS}, respond)

    for spec in buttons():
        app.action(spec.action_id)(after_ack.button(services, spec))

    @app.view(UPDATE_MODAL_CALLBACK)
    def on_update_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = read_status_update(view)
        if not text.strip():
            missing = services.templates.render("status_update_missing.slack.j2")
            ack(response_action="errors", errors={"update": missing})
            return
        after_ack.accept(ack, UPDATE_MODAL_KIND, {"incident_id": str(view.get("private_metadata")), "text": text,
                                                  "user_id": clicked_by(body)}, log_reply)

    @app.view(ATTACH_MODAL_CALLBACK)
    def on_alerts_attach_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        after_ack.accept(ack, ATTACH_KIND, attach_submission(body, view), log_reply)

    for event_type in CHANNEL_LOG_EVENTS:
        app.event(event_type)(_channel_log_listener(services))

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.exception("unhandled error in a listener: %s", error)

    return app


COMMAND_KIND = "command"
COMMAND_FIELDS = ("text", "user_id", "channel_id", "response_url", "trigger_id")
"""What of a slash command is recorded in the inbox: enough to parse and run it again after a crash."""
UPDATE_MODAL_KIND = "status_update_modal"


def durable_after_ack(services: Context, work: ThreadPoolExecutor, inbox: Inbox) -> AfterAck:
    """The after-ack wrapper of a serving bot: every command, click and submission recorded before its ack."""
    return AfterAck(work, services.templates, inbox)


def _command_work(services: Context, registry: CommandRegistry) -> Callable[[dict[str, Any]], Callable[[], str]]:
    def build(command: dict[str, Any]) -> Callable[[], str]:
        parsed = registry.parse(str(command.get("text") or ""))  # parsed before the ack too: it parses again
        invocation = Invocation(parsed, str(command["user_id"]), str(command["channel_id"]),
                                command.get("response_url"), command.get("trigger_id"))
        return metrics.counted_command(parsed.name, lambda: run_command(services, registry, invocation).text)

    return build


def _modal_update_work(services: Context, body: dict[str, Any]) -> Callable[[], str]:
    def post() -> str:
        submit_status_update(services, str(body["incident_id"]), str(body["text"]), str(body["user_id"]))
        return ""  # a modal has no response_url: only a failure is worth a line (in the log)

    return post


def _channel_log_listener(services: Context) -> Callable[..., None]:
    def listener(event: dict[str, Any]) -> None:
        channel = event.get("channel") or event.get("channel_id") or (event.get("item") or {}).get("channel")
        if not channel:
            return
        incident = services.store.find_by_channel(str(channel))
        if incident is not None:
            record_event(services.store.timeline(incident.id), event)

    return listener
