"""The demo page's server side: static files under ``/ui/`` and a small JSON API under ``/ui/api/``.

Mounted on the emulator's HTTP server by :func:`sandbox.demo.page.attach_page` (the demo stack does
it at start). The page polls ``GET /ui/api/state`` about once a second and acts through POSTs that
call the emulator's :class:`~sandbox.slack.interactions.Interactions` — typing a slash command,
clicking a button, submitting a modal, posting a message — which send the bot what Slack sends
(signed requests, or envelopes in Socket Mode). The page never writes the bot's side: channels,
messages, ephemeral replies, modals and files all appear because the bot made the Web API calls.

Routes (JSON bodies; every answer is ``{"ok": true, …}`` or ``{"ok": false, "error": …}``):

``GET  /ui/api/state?user=U&channel=C&thread=TS``
    users, channels, the channel's messages, the user's ephemeral messages and open modals, the
    open thread, files, the clusters with their scenarios (``clusters``; ``scenarios`` is the default
    cluster's) and panel jobs.
``POST /ui/api/command``  ``{user, channel, text, command?}`` — a slash command (``/k8s`` by default).
``POST /ui/api/message``  ``{user, channel, text, thread_ts?}`` — a plain message.
``POST /ui/api/click``    ``{user, channel, ts, action_id, block_id?, value?}`` — a button.
``POST /ui/api/submit``   ``{user, view_id, values}`` — the modal's Submit.
``POST /ui/api/close``    ``{user, view_id}`` — the modal's Cancel.
``POST /ui/api/scenario`` ``{op: inject|undo|drill|alerts|resolve-alerts, key, user, cluster?}`` — queued on a
    :class:`JobRunner`; ``cluster`` picks the cluster's panel (default: the demo's default cluster).
``GET  /ui/api/files/<id>`` — an uploaded file's bytes (``text/plain``).
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from sandbox.slack.errors import EmulatorError
from sandbox.slack.model import SYSTEM_SUBTYPES, Message
from sandbox.slack.server import HttpRequest, SlackHttpServer
from sandbox.demo.page.jobs import JobRunner
from sandbox.slack.webapi import HttpReply

if TYPE_CHECKING:
    from sandbox.slack.emulator import SlackEmulator

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/ui/"
API_PREFIX = "/ui/api/"


class ScenarioLike(Protocol):
    """What the panel shows of a scenario (``sandbox.demo.catalogue.ScenarioSpec``)."""

    @property
    def label(self) -> str: ...

    @property
    def expected_pattern(self) -> str: ...

    @property
    def alerts(self) -> Sequence[object]: ...


class PanelLike(Protocol):
    """The scenario panel of one cluster of the demo stack (``sandbox.demo.catalogue.ScenarioPanel``)."""

    @property
    def cluster(self) -> str: ...

    @property
    def active(self) -> Mapping[str, object]: ...

    def inject(self, key: str) -> str: ...

    def undo(self, key: str) -> str: ...

    @property
    def alerting(self) -> Mapping[str, object]: ...

    def fire_alerts(self, key: str) -> str: ...

    def resolve_alerts(self, key: str) -> str: ...


class DemoStackLike(Protocol):
    """What the page needs of ``sandbox.demo.stack.DemoStack``."""

    @property
    def panels(self) -> Mapping[str, PanelLike]:
        """Cluster name → its scenario panel, the default cluster first."""
        ...

    def cluster_card(self, name: str) -> Mapping[str, str]:
        """``mode``, ``description``, ``channel`` (id) and ``channel_name`` of a cluster, for its panel's header."""
        ...

    def start_drill(self, key: str, user_id: str, cluster: str | None = None) -> str: ...


class BadRequest(Exception):
    """A request from the page that cannot be served; the message is shown to the person."""


class DemoPage:
    """The page's routes on one emulator; the scenario panel is offered when a stack is given."""

    def __init__(self, emulator: SlackEmulator, stack: DemoStackLike | None = None,
                 scenarios: Mapping[str, ScenarioLike] | None = None) -> None:
        self.emulator = emulator
        self.stack = stack
        self.scenarios: Mapping[str, ScenarioLike] = scenarios or {}
        self.jobs = JobRunner()
        self._actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "command": self._command, "message": self._message, "click": self._click, "submit": self._submit,
            "close": self._close, "scenario": self._scenario,
        }

    def mount(self, server: SlackHttpServer) -> None:
        """Serve the page and its API on ``server``."""
        server.route(API_PREFIX, self._api)
        server.route(PREFIX, self._static, methods=("GET",))

    # --- HTTP ----------------------------------------------------------------------------------
    def _static(self, request: HttpRequest) -> HttpReply:
        name = request.tail(PREFIX) or "index.html"
        path = (STATIC_DIR / name).resolve()
        if not path.is_relative_to(STATIC_DIR) or not path.is_file():
            return HttpReply.text(404, "not_found")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind == "application/javascript":
            kind += "; charset=utf-8"
        return HttpReply(200, path.read_bytes(), {"Content-Type": kind, "Cache-Control": "no-store"})

    def _api(self, request: HttpRequest) -> HttpReply:
        route = request.tail(API_PREFIX)
        try:
            if request.method == "GET" and route == "state":
                query = {k: v[-1] for k, v in parse_qs(request.query).items()}
                return HttpReply.json(200, {"ok": True, **self.state(query.get("user", ""), query.get("channel"),
                                                                     query.get("thread"))})
            if request.method == "GET" and route.startswith("files/"):
                return self._file(route.removeprefix("files/").split("/")[0])
            action = self._actions.get(route)
            if request.method != "POST" or action is None:
                return HttpReply.json(404, {"ok": False, "error": f"no such page API: {request.method} {route}"})
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise BadRequest("the request body must be a JSON object")
            return HttpReply.json(200, {"ok": True, **action(body)})
        except (BadRequest, EmulatorError, json.JSONDecodeError) as error:
            return HttpReply.json(400, {"ok": False, "error": str(error)})

    # --- reading -------------------------------------------------------------------------------
    def state(self, user: str, channel: str | None, thread: str | None) -> dict[str, Any]:
        """Everything the page shows for ``user`` looking at ``channel`` (and the thread ``thread``)."""
        ws = self.emulator.workspace
        with ws.lock:
            users = {u.id: {"name": u.name, "real_name": u.real_name or u.name, "is_bot": u.is_bot}
                     for u in ws.users.values()}
            channels = [{"id": c.id, "name": c.name, "is_private": c.is_private, "is_archived": c.is_archived,
                         "is_member": user in c.members, "topic": c.topic, "purpose": c.purpose,
                         "members": len(c.members), "created": c.created,
                         "latest": (ws.history(c.id)[-1].ts if ws.history(c.id) else "")}
                        for c in ws.channels.values() if not c.is_private or user in c.members]
            selected = ws.channel(channel) if channel else None
            messages = [_message(m) for m in ws.history(selected.id)] if selected else []
            ephemeral = [{**e, "is_ephemeral": True} for e in ws.ephemeral
                         if selected and e.get("user") == user and e.get("channel") == selected.id]
            replies = [_message(m) for m in ws.thread(selected.id, thread)] if selected and thread else []
            views = [{"id": v.id, "hash": v.hash, "callback_id": v.callback_id, **{
                k: v.definition.get(k) for k in ("title", "submit", "close", "blocks", "private_metadata")}}
                for v in ws.views.values() if v.user == user and v.is_open]
            files = [{"id": f.id, "name": f.filename, "title": f.title or f.filename, "channel": f.channel,
                      "message_ts": f.message_ts, "size": len(f.content or b""), "user": f.user}
                     for f in ws.files.values() if f.completed]
            team = {"id": ws.team_id, "name": ws.team_name, "bot_user_id": ws.bot_user_id}
        clusters = self._clusters()
        return {"team": team, "users": users, "channels": channels, "channel": selected.id if selected else None,
                "messages": messages, "ephemeral": ephemeral, "thread": replies, "views": views[-1:],
                "files": files, "scenarios": clusters[0]["scenarios"] if clusters else [], "clusters": clusters,
                "panel": self.stack is not None, "jobs": self.jobs.snapshot()}

    def _clusters(self) -> list[dict[str, Any]]:
        """Each cluster's panel: its name, mode and channel, and its scenarios (active, alerting)."""
        if self.stack is None:
            return []
        shown = []
        for name, panel in self.stack.panels.items():
            scenarios = [{"key": key, "label": spec.label, "expected_pattern": spec.expected_pattern,
                          "active": key in panel.active, "alerts": len(spec.alerts),
                          "alerting": key in panel.alerting} for key, spec in self.scenarios.items()]
            shown.append({"name": name, **self.stack.cluster_card(name), "scenarios": scenarios})
        return shown

    def _file(self, file_id: str) -> HttpReply:
        ws = self.emulator.workspace
        with ws.lock:
            file = ws.files.get(file_id)
            content = file.content if file is not None and file.completed else None
        if content is None:
            return HttpReply.json(404, {"ok": False, "error": f"no uploaded file {file_id}"})
        return HttpReply(200, content, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})

    # --- acting as a person --------------------------------------------------------------------
    def _command(self, body: dict[str, Any]) -> dict[str, Any]:
        command = str(body.get("command") or "/k8s")
        response = self.emulator.slash_command(_field(body, "user"), _field(body, "channel"),
                                               str(body.get("text") or "").strip(), command)
        return _delivery(response.status, response.body, response.elapsed_seconds, response.error)

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _field(body, "text")
        ts = self.emulator.post_message_as_user(_field(body, "user"), _field(body, "channel"), text,
                                                thread_ts=body.get("thread_ts") or None)
        return {"ts": ts}

    def _click(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.emulator.click_button(_field(body, "user"), _field(body, "channel"), _field(body, "ts"),
                                              _field(body, "action_id"), body.get("value"), body.get("block_id"))
        return _delivery(response.status, response.body, response.elapsed_seconds, response.error)

    def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        user, view_id = _field(body, "user"), _field(body, "view_id")
        view = self.emulator.views.get(view_id)
        if view is None or view.user != user or not view.is_open:
            raise BadRequest("that modal is no longer open")
        values = body.get("values") or {}
        if not isinstance(values, dict):
            raise BadRequest("values must be {block_id: {action_id: value}}")
        response = self.emulator.submit_view(user, view.callback_id, values)
        answer = _delivery(response.status, response.body, response.elapsed_seconds, response.error)
        reopened = self.emulator.views.get(view_id)
        answer["closed"] = reopened is None or not reopened.is_open
        return answer

    def _close(self, body: dict[str, Any]) -> dict[str, Any]:
        """Cancel: Slack closes the modal (the bot's views never ask for ``view_closed``)."""
        user, view_id = _field(body, "user"), _field(body, "view_id")
        ws = self.emulator.workspace
        with ws.lock:
            view = ws.views.get(view_id)
            if view is not None and view.user == user:
                view.is_open = False
        return {}

    def _scenario(self, body: dict[str, Any]) -> dict[str, Any]:
        stack = self.stack
        if stack is None:
            raise BadRequest("this emulator runs without the demo stack; no scenarios to inject")
        op, key = _field(body, "op"), _field(body, "key")
        spec = self.scenarios.get(key)
        if spec is None:
            raise BadRequest(f"unknown scenario {key!r}")
        user = str(body.get("user") or "")
        cluster = str(body.get("cluster") or next(iter(stack.panels)))
        panel = stack.panels.get(cluster)
        if panel is None:
            raise BadRequest(f"unknown cluster {cluster!r} (the demo runs {', '.join(stack.panels)})")
        on = f" on {cluster}" if len(stack.panels) > 1 else ""
        work: dict[str, tuple[str, Callable[[], str]]] = {
            "inject": (f"Inject {spec.label}{on}", lambda: panel.inject(key)),
            "undo": (f"Undo {spec.label}{on}", lambda: panel.undo(key)),
            "drill": (f"Drill: {spec.label}{on}", lambda: stack.start_drill(key, user, cluster)),
            "alerts": (f"Fire the alerts of {spec.label}{on}", lambda: panel.fire_alerts(key)),
            "resolve-alerts": (f"Resolve the alerts of {spec.label}{on}", lambda: panel.resolve_alerts(key)),
        }
        if op not in work:
            raise BadRequest(f"unknown panel operation {op!r} (inject, undo, drill, alerts or resolve-alerts)")
        title, run = work[op]
        return {"job": self.jobs.submit(title, run).to_json()}


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} is required")
    return value


def _message(message: Message) -> dict[str, Any]:
    body = message.to_api()
    body["channel"] = message.channel
    body["is_system"] = message.subtype in SYSTEM_SUBTYPES
    return body


def _delivery(status: int, body: str, elapsed: float, error: str | None) -> dict[str, Any]:
    """How the bot answered, and what Slack would show the person when it did not."""
    shown = None
    if status == 0:
        shown = f"/k8s failed: the app did not respond ({error or 'no connection'})"
    elif not 200 <= status < 300:
        shown = f"the app answered HTTP {status}"
    elif elapsed > 3.0:
        shown = "operation_timeout: the app took longer than 3 s to answer"
    return {"status": status, "elapsed_seconds": round(elapsed, 3), "body": body[:2000], "problem": shown}
