"""The one chokepoint for every Slack Web API call the bot makes.

It talks to ``SLACK_API_URL`` (Slack, GovSlack or the local emulator), honours ``Retry-After``
on HTTP 429 for every method, retries server errors only for methods that are safe to repeat,
and turns ``ok: false`` into :class:`SlackApiError` carrying Slack's error code, so callers can
accept specific codes (``name_taken``, ``already_in_channel``) and let the rest propagate.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError as SdkSlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.models.blocks import Block

from observability import metrics
from incident.errors import SlackApiError, error_text
from incident.settings import Settings

log = logging.getLogger(__name__)

SAFE_TO_REPEAT_PREFIXES: tuple[str, ...] = (
    "auth.test", "conversations.history", "conversations.replies", "conversations.info",
    "conversations.members", "conversations.list", "users.info", "usergroups.users.list",
    "chat.getPermalink", "conversations.setTopic", "conversations.setPurpose", "chat.update", "files.info",
)
"""Methods whose repetition after a server error cannot duplicate anything visible."""

BlocksArg = list[Block] | list[dict[str, Any]] | None

TRANSIENT_CODES: frozenset[str] = frozenset({
    "internal_error", "service_unavailable", "fatal_error", "request_timeout", "timeout", "connection_error",
})
"""Failures after which Slack may or may not have done the call: never blindly repeat a post."""
POST_EVENT_TYPE = "k8sbot_post"
POST_ATTEMPTS = 4


def _blocks(blocks: BlocksArg) -> list[dict[str, Any]] | None:
    if blocks is None:
        return None
    return [b.to_dict() if isinstance(b, Block) else b for b in blocks]


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CountingRateLimitHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 retry handler (sleeps ``Retry-After``, then retries) that also counts each 429 by method."""

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        if response is not None and response.status_code == 429:
            metrics.record_slack_rate_limited(request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        super().prepare_for_next_attempt(state=state, request=request, response=response, error=error)


class SlackClient:
    """Web API access for the bot, raising :class:`SlackApiError` on ``ok: false``."""

    def __init__(self, settings: Settings, *, max_rate_limit_retries: int = 8, timeout: int = 15) -> None:
        """``max_rate_limit_retries=0``: a 429 is not slept on but raised (code ``ratelimited``, with
        ``retry_after``), so a caller with other work — the outbox's drainer — can do that meanwhile."""
        token = settings.secret("slack_bot_token")
        self.rate_limited: RateLimitErrorRetryHandler = CountingRateLimitHandler(
            max_retry_count=max_rate_limit_retries)
        handlers = [self.rate_limited] if max_rate_limit_retries else []
        self._count_429_here = not handlers  # else the retry handler counts each 429
        self._web = WebClient(token=token, base_url=settings.slack_api_url, timeout=timeout, retry_handlers=handlers)
        self._safe_web = WebClient(token=token, base_url=settings.slack_api_url, timeout=timeout,
                                   retry_handlers=[*handlers, ServerErrorRetryHandler(max_retry_count=3)])

    @property
    def web(self) -> WebClient:
        """The underlying slack_sdk client (for Bolt, which needs one)."""
        return self._web

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a Web API method; returns the response body or raises SlackApiError."""
        client = self._safe_web if method.startswith(SAFE_TO_REPEAT_PREFIXES) else self._web
        params = {k: v for k, v in params.items() if v is not None}
        try:
            if any(isinstance(v, (dict, list)) for v in params.values()):
                response = client.api_call(method, json=params)
            else:  # Slack's read methods accept only form/query arguments, not JSON bodies
                response = client.api_call(method, data={k: _form_value(v) for k, v in params.items()})
        except (TimeoutError, URLError, ConnectionError) as error:
            code = "timeout" if isinstance(error, TimeoutError) or "timed out" in str(error) else "connection_error"
            log.warning("slack %s failed: %s", method, code)
            metrics.record_slack_error(method, code)
            raise SlackApiError(method, code) from error
        except SdkSlackApiError as error:
            code = str(error.response.get("error", "unknown_error")) if error.response is not None else "unknown_error"
            retry_after = None
            if error.response is not None and error.response.status_code == 429:
                code = "ratelimited"
                if self._count_429_here:
                    metrics.record_slack_rate_limited(method)
                headers = {k.lower(): v for k, v in (error.response.headers or {}).items()}
                value = headers.get("retry-after")
                value = value[0] if isinstance(value, list) else value
                retry_after = float(value) if value and str(value).replace(".", "", 1).isdigit() else 1.0
            log.warning("slack %s failed: %s", method, code)
            metrics.record_slack_error(method, code)
            raise SlackApiError(method, code, retry_after=retry_after) from error
        return dict(response.data) if isinstance(response.data, dict) else {}

    # --- conveniences used across the bot ---------------------------------------------------
    def post_message(self, channel: str, text: str, blocks: BlocksArg = None, thread_ts: str | None = None,
                     *, post_id: str | None = None, look_first: bool = False, **extra: Any) -> str:
        """Post a message (``text`` is the notification/fallback text); returns its ``ts``.

        Exactly once: each post carries a unique id in its message metadata; after a 5xx or a
        timeout the channel is searched for that id before trying again, so a post that Slack
        made but whose answer was lost is not made twice. When the bot was removed from a public
        channel (``not_in_channel``) it rejoins once and posts; otherwise the error says what to do.

        ``post_id`` makes the identity stable across processes (the outbox stores it with the intent);
        with ``look_first`` the channel is searched for it before the first attempt (a re-delivery after
        a crash, when the earlier attempt may have landed).
        """
        post_id = post_id or uuid.uuid4().hex
        if look_first and (posted := self._find_post(channel, thread_ts, post_id)) is not None:
            log.info("slack chat.postMessage: already posted by an earlier attempt (%s); not reposting", posted)
            return posted
        metadata = {"event_type": POST_EVENT_TYPE, "event_payload": {"post_id": post_id}}
        backoff = 1.0
        rejoined = False
        attempt = 0
        while True:
            attempt += 1
            try:
                body = self.call("chat.postMessage", channel=channel, text=text, blocks=_blocks(blocks),
                                 thread_ts=thread_ts, metadata=metadata, **extra)
                return str(body["ts"])
            except SlackApiError as error:
                if error.code == "not_in_channel" and not rejoined:
                    rejoined = True
                    self._rejoin(channel)
                    continue
                if error.code not in TRANSIENT_CODES or attempt >= POST_ATTEMPTS:
                    raise
                # Give a request still in flight time to land, then look for it before posting again.
                time.sleep(backoff)
                backoff *= 2
                posted = self._find_post(channel, thread_ts, post_id)
                if posted is not None:
                    log.info("slack chat.postMessage: answer lost but the message exists (%s); not reposting", posted)
                    return posted

    def _rejoin(self, channel: str) -> None:
        try:
            self.call("conversations.join", channel=channel)
        except SlackApiError as error:
            raise SlackApiError("chat.postMessage", "not_in_channel",
                                hint=error_text("cannot_rejoin_hint", code=error.code)) from error

    def _find_post(self, channel: str, thread_ts: str | None, post_id: str) -> str | None:
        """The ts of a message of ours carrying ``post_id``, among the newest of the channel or thread."""
        try:
            if thread_ts:
                body = self.call("conversations.replies", channel=channel, ts=thread_ts, limit=100,
                                 include_all_metadata=True)
            else:
                body = self.call("conversations.history", channel=channel, limit=50, include_all_metadata=True)
        except SlackApiError:
            return None
        for message in body.get("messages", []):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("post_id") == post_id:
                return str(message["ts"])
        return None

    def update_message(self, channel: str, ts: str, text: str, blocks: BlocksArg = None) -> None:
        """Replace a message the bot posted."""
        self.call("chat.update", channel=channel, ts=ts, text=text, blocks=_blocks(blocks) or [])

    def post_ephemeral(self, channel: str, user: str, text: str, blocks: BlocksArg = None) -> None:
        """A message only ``user`` sees."""
        self.call("chat.postEphemeral", channel=channel, user=user, text=text, blocks=_blocks(blocks))

    def respond(self, response_url: str, text: str, blocks: BlocksArg = None, *, replace_original: bool = False,
                in_channel: bool = False) -> None:
        """Answer through a slash command's or interaction's ``response_url``."""
        from slack_sdk.webhook import WebhookClient

        body: dict[str, Any] = {"text": text, "replace_original": replace_original,
                                "response_type": "in_channel" if in_channel else "ephemeral"}
        if blocks is not None:
            body["blocks"] = _blocks(blocks)
        response = WebhookClient(response_url, timeout=10).send_dict(body)
        if response.status_code >= 400:
            raise SlackApiError("response_url", f"http_{response.status_code}")

    def permalink(self, channel: str, ts: str) -> str | None:
        """Link to a message, or ``None`` if Slack cannot give one."""
        try:
            return str(self.call("chat.getPermalink", channel=channel, message_ts=ts)["permalink"])
        except SlackApiError:
            return None
