"""Serving the Bolt app: HTTP (a WSGI app under waitress) or Socket Mode.

The HTTP app routes ``/slack/events`` (slash commands, interactivity and Events API all share it,
as the Slack app manifest declares) to Bolt, and answers ``/healthz`` and ``/readyz`` itself.
On start the channel log is back-filled for every active incident, in the background.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.app import create_app
from bot.backfill import backfill_active_incidents
from bot.services import BotServices
from incident.settings import Settings

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
StartResponse = Callable[..., Any]


class BotWsgiApp:
    """WSGI entry: Slack requests to Bolt, health endpoints answered here."""

    def __init__(self, app: App, services: BotServices) -> None:
        self._slack = SlackRequestHandler(app)
        self._services = services

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == SLACK_PATH:
            return self._slack(environ, start_response)
        if path == "/healthz":
            return _json(start_response, 200, {"status": "ok"})
        if path == "/readyz":
            return self._readyz(start_response)
        return _json(start_response, 404, {"error": "not found", "slack_endpoint": SLACK_PATH})

    def _readyz(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            self._services.redis.ping()
        except Exception as error:  # noqa: BLE001 - any failure means not ready
            return _json(start_response, 503, {"status": "not ready", "redis": str(error)})
        return _json(start_response, 200, {"status": "ready", "redis": "ok"})


def _json(start_response: StartResponse, status: int, body: dict[str, Any]) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def build_wsgi_app(settings: Settings, services: BotServices | None = None) -> BotWsgiApp:
    services = services or BotServices.from_settings(settings)
    return BotWsgiApp(create_app(services), services)


def _start_backfill(services: BotServices) -> None:
    threading.Thread(target=backfill_active_incidents, args=(services,), name="backfill", daemon=True).start()


def serve_http(settings: Settings, *, host: str, port: int, threads: int = 16) -> None:
    """Serve until interrupted."""
    from waitress import serve

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = BotServices.from_settings(settings)
    app = build_wsgi_app(settings, services)
    _start_backfill(services)
    log.info("serving Slack requests on http://%s:%d%s", host, port, SLACK_PATH)
    serve(app, host=host, port=port, threads=threads, ident="k8s-incident-bot")


def serve_socket_mode(settings: Settings) -> None:
    """Connect to Slack over Socket Mode until interrupted."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = BotServices.from_settings(settings)
    _start_backfill(services)
    SocketModeHandler(create_app(services), settings.secret("slack_app_token")).start()
