"""HTTP plumbing: a stdlib ``ThreadingHTTPServer`` on loopback with a small prefix router.

The emulator mounts its endpoints here (``/api/`` for the Web API, ``/upload/`` for file
bytes, ``/hooks/`` for response URLs); the demo page (``sandbox.demo.page``) mounts under
``/ui/`` the same way, with :meth:`SlackHttpServer.route`. Handlers receive an :class:`HttpRequest` and return an
:class:`~sandbox.slack.webapi.HttpReply`; nothing here knows Slack.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from sandbox.slack.webapi import HttpReply

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class HttpRequest:
    """One incoming request, fully read."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def tail(self, prefix: str) -> str:
        """The path after ``prefix`` (``/api/chat.postMessage`` → ``chat.postMessage``)."""
        return self.path[len(prefix):]


Route = Callable[[HttpRequest], HttpReply]


class _BusyServer(ThreadingHTTPServer):
    """A listen backlog like a real front end's: the stdlib default of 5 refuses bursts of connections."""

    request_queue_size = 256
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that drops its connection while its request is read (a browser closing a kept-alive
        connection, a killed bot) is routine, as it is for Slack: logged at debug, not the stdlib's traceback
        on stderr. Anything else is a defect of the emulator and is logged as one."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("client %s dropped its connection: %r", client_address, error)
        else:
            log.error("emulator request from %s failed", client_address, exc_info=True)


class SlackHttpServer:
    """Serves registered routes on ``127.0.0.1`` from a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._routes: list[tuple[frozenset[str], str, Route]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, prefix: str, handler: Route, methods: tuple[str, ...] = ("GET", "POST")) -> None:
        """Send requests whose path starts with ``prefix`` to ``handler`` (longest prefix wins)."""
        self._routes.append((frozenset(methods), prefix, handler))
        self._routes.sort(key=lambda r: len(r[1]), reverse=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/`` of the running server."""
        if self._server is None:
            raise RuntimeError("the server is not running; call start() first")
        port = int(self._server.server_address[1])
        return f"http://{self._host}:{port}/"

    def start(self) -> None:
        """Bind (a free port unless one was given) and serve in a daemon thread."""
        if self._server is not None:
            return
        dispatch = self._dispatch

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._write(HttpReply.text(413, "request_too_large"))
                    return
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = HttpRequest(self.command, parts.path, parts.query, dict(self.headers.items()), body)
                self._write(dispatch(request))

            def _write(self, reply: HttpReply) -> None:
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):  # the client died (a SIGKILLed bot): as Slack does,
                    log.debug("client gone before its answer: %s", self.path)  # the call took effect regardless
                    self.close_connection = True

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                log.debug("%s " + format, self.address_string(), *args)

        server = _BusyServer((self._host, self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="slack-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def _dispatch(self, request: HttpRequest) -> HttpReply:
        for methods, prefix, handler in self._routes:
            if request.path.startswith(prefix):
                if request.method not in methods:
                    return HttpReply.text(405, "method_not_allowed")
                try:
                    return handler(request)
                except Exception:  # noqa: BLE001 - a bug in the emulator must not hang the client
                    log.exception("emulator route %s failed", prefix)
                    return HttpReply.json(500, {"ok": False, "error": "fatal_error"})
        return HttpReply.json(404, {"ok": False, "error": "not_found", "path": request.path})
