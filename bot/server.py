"""Serving the Bolt app: HTTP (a WSGI app under waitress) or Socket Mode.

The HTTP app routes ``/slack/events`` (slash commands, interactivity and Events API all share it,
as the Slack app manifest declares) to Bolt, ``/alerts/alertmanager`` (Alertmanager's webhook, in both
modes) to :class:`bot.alert_intake.AlertIntake`, and answers ``/healthz`` (process up), ``/readyz`` (Redis
and the Kubernetes API reachable) and ``/metrics`` (Prometheus) itself.
On start the channel log is back-filled for every active incident, in the background.

Stopping (SIGTERM), in this order, so that no request is refused and nothing acknowledged is lost:
``/readyz`` fails at once (``"draining"``) while requests are still served, for
``SHUTDOWN_DELAY_SECONDS`` — the time the load balancer needs to stop routing here; then the server
stops taking requests and closes its socket; then the acknowledged work finishes (what does not
finish within :data:`DRAIN_SECONDS` stays in the inbox, :mod:`service.inbox`, for another replica to
replay); then the outbox's drainers send what they can and stop.

In Socket Mode the same Bolt app is fed envelopes by a :class:`~bot.socket_mode.SocketModeLink`,
and the same WSGI app serves only the probes: ``/readyz`` is ready only while the link is connected
and greeted (``hello``), ``/healthz`` fails once the process has been without a connection for
:data:`SOCKET_UNHEALTHY_AFTER_SECONDS` (a liveness restart is the cure then), ``/slack/events`` is
not served.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.alert_intake import ALERTS_PATH, AlertIntake
from bot.app import create_app, durable_after_ack, post_ack_pool
from bot.payload_check import form_payload_problem
from bot.socket_mode import SocketModeLink
from bot.backfill import backfill_active_incidents
from observability.logging_setup import configure_logging
from service.context import Context
from service.health import KubeProbe
from service.inbox import Inbox, Keeper
from service.outbox import Drainer
from observability import metrics
from incident.settings import Settings

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
StartResponse = Callable[..., Any]


FLUSH_SECONDS = 30.0
"""Without a deadline (tests), how long a stopping bot keeps sending queued posts at most."""
DRAIN_SECONDS = 20.0
"""How long a stopping bot finishes acknowledged work: with ``SHUTDOWN_DELAY_SECONDS`` (5 s) before it, inside
Kubernetes' default 30 s grace period, with time left to send queued posts (what is not finished is replayed
from the inbox by another replica)."""
SOCKET_UNHEALTHY_AFTER_SECONDS = 60.0
"""A Socket Mode process without a connection this long fails ``/healthz`` (reconnects take seconds)."""


class BotWsgiApp:
    """WSGI entry: Slack requests to Bolt, health endpoints answered here."""

    def __init__(self, app: App, services: Context, work: ThreadPoolExecutor | None = None,
                 drainer: Drainer | None = None, link: SocketModeLink | None = None,
                 keeper: Keeper | None = None) -> None:
        self._slack = SlackRequestHandler(app)
        self._services = services
        self._kube_probe = KubeProbe(services)
        self._work = work
        self._drainer = drainer
        self._link = link
        """Set in Socket Mode: Slack's requests come over it, so ``/slack/events`` is not served."""
        self._keeper = keeper
        self._draining = threading.Event()
        self._alerts = AlertIntake(services)
        """Alertmanager's webhook (``bot.alert_intake``), served in both modes."""

    @property
    def draining(self) -> bool:
        """Whether stopping has begun (:meth:`start_draining`)."""
        return self._draining.is_set()

    def start_draining(self) -> None:
        """The first step of stopping: ``/readyz`` fails (requests are still served), no replays are taken on."""
        self._draining.set()
        if self._keeper is not None:
            self._keeper.stop_taking_over()

    def drain(self, timeout: float | None = DRAIN_SECONDS) -> bool:
        """Finish the work already acknowledged to Slack (call after the server stopped taking requests).

        Waits at most ``timeout`` seconds (``None``: until done), then drops what has not started and says
        so: an orchestrator kills the process after its grace period anyway, and a bounded wait lets the
        log tell what was lost. The rest of the time goes to sending the outbox's queued posts; what is
        still queued then stays in Redis for the other replicas (or this one's successor).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if self._work is None:
                return True
            waiter = threading.Thread(target=self._work.shutdown, kwargs={"wait": True}, name="drain", daemon=True)
            waiter.start()
            waiter.join(timeout)
            if waiter.is_alive():
                self._work.shutdown(wait=False, cancel_futures=True)
                log.error("acknowledged work still running after %s s; what did not finish stays in the inbox and "
                          "another replica replays it", timeout)
                return False
            return True
        finally:
            if self._keeper is not None:  # leases end unrenewed from here: what is left is another replica's
                self._keeper.stop()
            if self._drainer is not None:
                self._drainer.stop(flush_until=deadline if deadline is not None else time.monotonic() + FLUSH_SECONDS)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == SLACK_PATH and self._link is None:
            return self._slack_or_400(environ, start_response)
        if path == ALERTS_PATH:
            return self._alerts(environ, start_response)
        if path == "/healthz":
            return self._healthz(start_response)
        if path == "/readyz":
            return self._readyz(start_response, _excluded(environ.get("QUERY_STRING", "")))
        if path == "/metrics":
            return self._metrics(start_response)
        return _json(start_response, 404, {"error": "not found", "slack_endpoint": SLACK_PATH})

    def _slack_or_400(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Bolt, but a payload so malformed that Bolt itself trips over it is a 400, never a 500.

        Found by fuzzing: a correctly signed ``block_actions`` payload with an empty ``actions`` list
        makes Bolt's own error handler raise. Nothing has run at that point, so nothing changed.
        """
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            problem = form_payload_problem(body)
            if problem is not None:
                log.info("refused a malformed interactivity payload: %s", problem)
                return _json(start_response, 400, {"error": f"malformed Slack payload: {problem}"})
        try:
            return self._slack(environ, start_response)
        except Exception:  # noqa: BLE001 - the request is refused, the log keeps the detail
            log.warning("refused a Slack request Bolt could not process", exc_info=True)
            return _json(start_response, 400, {"error": "malformed Slack payload"})

    def _healthz(self, start_response: StartResponse) -> Iterable[bytes]:
        """Process up; in Socket Mode also whether it is connected, unhealthy after a long time without."""
        if self._link is None:
            return _json(start_response, 200, {"status": "ok"})
        state = self._link.state()
        healthy = state.connected or state.seconds < SOCKET_UNHEALTHY_AFTER_SECONDS
        return _json(start_response, 200 if healthy else 503,
                     {"status": "ok" if healthy else "unhealthy", "socket_mode": state.to_json()})

    def _readyz(self, start_response: StartResponse, excluded: frozenset[str] = frozenset()) -> Iterable[bytes]:
        """Redis and the Kubernetes API (and the Socket Mode connection in Socket Mode);
        ``?exclude=kubernetes`` (like the apiserver's) leaves a check out. Not ready once stopping."""
        if self._draining.is_set():
            return _json(start_response, 503, {"status": "draining"})
        probes: dict[str, Callable[[], object]] = {"redis": self._services.redis.ping,
                                                   "kubernetes": self._kube_probe}
        if self._link is not None:
            probes["slack"] = self._link.require_connected
        checks = {name: self._check(probe) for name, probe in probes.items() if name not in excluded}
        ready = all(result == "ok" for result in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", **checks}
        agents = self._agents()
        if agents:
            body["agents"] = agents  # shown, not gating: the bot stays ready while one cluster's agent is down
        return _json(start_response, 200 if ready else 503, body)

    def _agents(self) -> dict[str, str]:
        """Each agent cluster's agent: ``seen 3 s ago`` or why it counts as down."""
        from service import fleet

        try:
            ages = fleet.agent_ages(self._services)
        except Exception as error:  # noqa: BLE001 - Redis down is already the redis check's failure
            return {"error": f"{type(error).__name__}: {error}"[:200]}
        window = self._services.settings.agent_heartbeat_seconds
        return {name: f"seen {age:.0f} s ago" if age is not None else f"down: not seen for {window} s"
                for name, age in ages.items()}

    @staticmethod
    def _check(probe: Callable[[], object]) -> str:
        try:
            probe()
        except Exception as error:  # noqa: BLE001 - any failure means not ready
            return f"{type(error).__name__}: {error}"[:300]
        return "ok"

    def _metrics(self, start_response: StartResponse) -> Iterable[bytes]:
        from service.jobs import QUEUE_KINDS, get_queue

        settings = self._services.settings
        queues = lambda: {kind: get_queue(settings, kind) for kind in QUEUE_KINDS}  # noqa: E731
        try:
            from service import fleet

            ages = fleet.agent_ages(self._services)
            body, content_type = metrics.render(metrics.rq_queue_depths(queues),
                                                [metrics.agent_ages_family(ages)] if ages else [])
        except Exception as error:  # noqa: BLE001 - Redis down: the scrape fails visibly
            return _json(start_response, 503, {"error": f"metrics unavailable: {type(error).__name__}: {error}"})
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


def _excluded(query: str) -> frozenset[str]:
    from urllib.parse import parse_qs

    return frozenset(parse_qs(query).get("exclude", []))


def _json(start_response: StartResponse, status: int, body: dict[str, Any]) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def build_wsgi_app(settings: Settings, services: Context | None = None) -> BotWsgiApp:
    services = services or Context.from_settings(settings)
    work = post_ack_pool()
    app, keeper = _durable_app(services, work)
    return BotWsgiApp(app, services, work, Drainer.start_for(settings), keeper=keeper)


class BackgroundServer:
    """A waitress server whose loop runs on its own thread, and stops from any other thread without a race.

    waitress's ``close()`` closes the sockets from the calling thread while the loop may be in ``select`` on
    them, which ends the loop thread with ``OSError: [Errno 9] Bad file descriptor``. :meth:`stop` instead
    hands the close to the loop itself (waitress's trigger): the loop closes every socket it serves, its map
    empties, ``run`` returns; then the request threads finish what they were answering.

    waitress's ``pull_trigger`` queues the thunk first and writes the wake-up byte second. A request thread's
    own pull (after each response) can wake the loop in between, and the loop then runs the thunk, which
    closes the trigger, before the byte is written: that write fails with ``EBADF`` although the stop has
    happened (9 of 1,200 stops after a request, with two test suites loading the cores; the
    ``after-a-request`` test failed that way in two fresh clones run side by side). So ``EBADF`` there means
    done.
    """

    def __init__(self, app: Any, *, host: str, port: int, threads: int, name: str) -> None:
        from waitress.server import create_server

        self._server = create_server(app, host=host, port=port, threads=threads, ident="k8s-incident-bot")
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Refuse new connections, let the loop return, and wait up to ``timeout`` s for the request threads."""
        from waitress import wasyncore

        server = self._server
        if self._thread.is_alive():
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            except OSError as error:  # the loop ran the thunk before the byte was written: see the class
                if error.errno != errno.EBADF:
                    raise
            self._thread.join(timeout)
        else:
            server.close()
        server.task_dispatcher.shutdown(timeout=timeout)


def _durable_app(services: Context, work: ThreadPoolExecutor) -> tuple[App, Keeper]:
    """The Bolt app whose requests are recorded in the inbox before their ack, and this process's keeper."""
    inbox = Inbox(services.redis, services.keys)
    after_ack = durable_after_ack(services, work, inbox)
    app = create_app(services, work=work, after_ack=after_ack)
    return app, Keeper(inbox, after_ack.replay).start()


def _start_backfill(services: Context) -> None:
    threading.Thread(target=backfill_active_incidents, args=(services,), name="backfill", daemon=True).start()


def serve_http(settings: Settings, *, host: str, port: int, threads: int = 16) -> None:
    """Serve until interrupted (SIGTERM: readiness first, then the requests, then the work; see the module)."""
    from waitress.server import create_server

    configure_logging(settings)
    services = Context.from_settings(settings)
    app = build_wsgi_app(settings, services)
    _start_backfill(services)
    server = create_server(app, host=host, port=port, threads=threads, ident="k8s-incident-bot")
    log.info("serving Slack requests on http://%s:%d%s", host, port, SLACK_PATH)
    signal.signal(signal.SIGTERM, lambda signum, frame: _stop_after_delay(app, settings.shutdown_delay_seconds))
    try:
        server.run()  # returns on KeyboardInterrupt, after the requests being served were answered
    finally:
        server.close()  # refuse from now on (a load balancer retries a refused connection elsewhere)
        log.info("stopped taking requests; finishing the work already acknowledged to Slack")
        app.drain()
        log.info("stopped")


def _stop_after_delay(app: BotWsgiApp, delay: float) -> None:
    """SIGTERM (a pod being replaced): not ready now, still serving for ``delay`` s, then stop like Ctrl-C.

    The stop is an alarm (``SIGALRM``) whose handler raises ``KeyboardInterrupt`` in the main thread, where
    the server's loop runs: not a ``SIGINT`` sent by a timer thread, whose effect depended on the
    disposition the process inherited (a shell's ``&`` starts it with ``SIGINT`` ignored) and which once
    left a SIGTERMed bot serving on. A second SIGTERM while stopping changes nothing.
    """
    if app.draining:
        return
    log.info("SIGTERM: not ready; serving %.1f s more while the load balancer routes around this replica", delay)
    app.start_draining()
    signal.signal(signal.SIGALRM, _stop_serving)
    signal.setitimer(signal.ITIMER_REAL, max(delay, 0.01))


def _stop_serving(signum: int, frame: object) -> None:
    """Stop like Ctrl-C: SIGTERM in Socket Mode (the connection closes at once; Slack sends to the app's other
    connections), and the alarm that ends :func:`_stop_after_delay`'s delay over HTTP."""
    raise KeyboardInterrupt


def build_socket_mode(settings: Settings, services: Context | None = None) -> tuple[SocketModeLink, BotWsgiApp]:
    """The Bolt app behind a :class:`SocketModeLink`, and the probes' WSGI app that reports on it."""
    services = services or Context.from_settings(settings)
    work = post_ack_pool()
    app, keeper = _durable_app(services, work)
    link = SocketModeLink(app, settings.secret("slack_app_token"))
    return link, BotWsgiApp(app, services, work, Drainer.start_for(settings), link, keeper=keeper)


def serve_socket_mode(settings: Settings) -> None:
    """Connect to Slack over Socket Mode until interrupted; health and metrics stay on HTTP_PORT.

    SIGTERM (or Ctrl-C): stop reconnecting and close the connection — Slack sends what comes next
    to the app's other connections — then finish the work already acknowledged, as ``serve`` does.
    """
    configure_logging(settings)
    services = Context.from_settings(settings)
    link, wsgi = build_socket_mode(settings, services)
    probes = BackgroundServer(wsgi, host=settings.http_host, port=settings.http_port, threads=4,
                              name="probes-http").start()
    log.info("health and metrics on http://%s:%d (/healthz, /readyz, /metrics)", settings.http_host, settings.http_port)
    _start_backfill(services)
    signal.signal(signal.SIGTERM, _stop_serving)
    try:
        link.connect()
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        log.info("disconnecting from Slack; finishing the work already acknowledged")
        wsgi.start_draining()
        link.close()
        wsgi.drain()
        probes.stop()
        log.info("stopped")
