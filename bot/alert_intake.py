"""``POST /alerts/alertmanager``: Alertmanager's webhook receiver, on the bot's HTTP port (also in Socket Mode).

Alertmanager's ``webhook_config`` with ``http_config.authorization`` sends ``Authorization: Bearer
<token>``; the token is ``ALERTMANAGER_TOKEN`` (from a Secret). Each request is checked in this order,
and refused before anything is stored:

1. the endpoint is configured (no token set: 404, the endpoint does not exist);
2. ``POST`` (405), then the bearer token, compared in constant time (missing or wrong: 401 with
   ``WWW-Authenticate: Bearer``);
3. the body's size: ``Content-Length`` over :data:`MAX_BODY_BYTES` is refused unread (413), and a body
   without one is read only up to the limit;
4. JSON and the webhook schema, version "4" (:func:`incident.alert_payload.parse_notification`: 400
   with every reason).

Then :func:`service.alerts.accept` queues the processing (one RQ job per notification, its id the
notification's idempotency key) and the answer is 200 within milliseconds: Alertmanager never times
out and retries into duplicates, and a retry that does come (same content) is acknowledged as a
duplicate. Redis unreachable: 503, so Alertmanager retries later (nothing was acknowledged).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import RedisError

from incident.alert_payload import parse_notification
from incident.errors import AlertPayloadError
from observability import metrics
from service.alerts import accept
from service.context import Context

log = logging.getLogger(__name__)

ALERTS_PATH = "/alerts/alertmanager"
MAX_BODY_BYTES = 1024 * 1024
"""1 MiB. An alert as Alertmanager sends it is 0.3–1 KiB (labels, annotations, times, link), so this
holds a group of one to three thousand alerts; a receiver's ``max_alerts`` keeps bigger groups below it
(Alertmanager then sends the first ones and ``truncatedAlerts``)."""
StartResponse = Callable[..., Any]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            413: "Content Too Large", 415: "Unsupported Media Type", 503: "Service Unavailable"}


def _answer(start_response: StartResponse, status: int, body: dict[str, Any],
            headers: tuple[tuple[str, str], ...] = ()) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    start_response(f"{status} {_REASONS.get(status, '')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *headers])
    metrics.record_alert_notification(str(status))
    return [payload]


class AlertIntake:
    """The WSGI handler of :data:`ALERTS_PATH` (``bot.server.BotWsgiApp`` routes the path here)."""

    def __init__(self, services: Context) -> None:
        self.services = services

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        token = self.services.settings.alertmanager_token
        if token is None:
            return _answer(start_response, 404, {"error": "the Alertmanager intake is not configured "
                                                          "(set ALERTMANAGER_TOKEN)"})
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, 405, {"error": "POST an Alertmanager webhook notification"},
                           (("Allow", "POST"),))
        if not _authorized(environ.get("HTTP_AUTHORIZATION", ""), token.get_secret_value()):
            return _answer(start_response, 401, {"error": "missing or wrong bearer token"},
                           (("WWW-Authenticate", 'Bearer realm="alertmanager"'),))
        body = _read_bounded(environ)
        if body is None:
            return _answer(start_response, 413, {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"})
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type and "json" not in content_type.lower():
            return _answer(start_response, 415, {"error": f"expected application/json, not {content_type[:80]}"})
        try:
            notification = parse_notification(body)
        except AlertPayloadError as error:
            log.info("refused an Alertmanager notification: %s", error.message)
            return _answer(start_response, 400, {"error": error.message, "reasons": error.reasons[:error.MAX_REASONS]})
        try:
            accepted = accept(self.services, notification)
        except RedisError as error:
            log.warning("could not queue an Alertmanager notification: %s", error)
            return _answer(start_response, 503, {"error": "the bot's store is unavailable; retry later"})
        return _answer(start_response, 200, {"status": accepted.status, "group": accepted.group_id,
                                             "alerts": len(notification.alerts)})


def _authorized(header: str, token: str) -> bool:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def _read_bounded(environ: dict[str, Any]) -> bytes | None:
    """The body, or ``None`` when it is larger than :data:`MAX_BODY_BYTES` (a declared length is not read)."""
    declared = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if declared:
        try:
            length = int(declared)
        except ValueError:
            return None
        if length > MAX_BODY_BYTES:
            return None
        return stream.read(length) if length > 0 else b""
    body = stream.read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body
