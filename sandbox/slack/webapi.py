"""Web API plumbing: the method registry, argument parsing, and the dispatch pipeline.

Handlers are plain functions ``(ApiRequest) -> dict`` registered with
``@registry.method("chat.postMessage", required=("channel",))`` on an explicit
:class:`MethodRegistry` (see :mod:`sandbox.slack.methods`). :class:`WebApi` runs every call
through Slack's contract in order: unknown method → authentication → injected delay/faults →
tier rate limit → required arguments → handler, and records each call for tests.

Arguments arrive as the query string, a form body (urlencoded or multipart) or a JSON body.
As on Slack, a JSON body is read only by methods that accept JSON, and only with the token in
the ``Authorization`` header; read methods such as ``conversations.replies`` or ``users.info``
silently ignore a JSON body, so the call then fails for missing arguments exactly as it would.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

from sandbox.slack.errors import ApiError
from sandbox.slack.faults import FaultInjector
from sandbox.slack.ratelimit import RateLimiter
from sandbox.slack.state import Workspace

Handler = Callable[["ApiRequest"], dict[str, Any]]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its handler, required arguments and whether it reads JSON bodies."""

    name: str
    handler: Handler
    required: tuple[str, ...]
    json_input: bool
    token_type: str = "bot"
    """``bot`` (``xoxb-``) or ``app`` (the app-level ``xapp-`` token, in the Authorization header only)."""


class MethodRegistry:
    """Web API methods by name, filled with the :meth:`method` decorator."""

    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}

    def method(self, name: str, *, required: tuple[str, ...] = (), json_input: bool = True,
               token_type: str = "bot") -> Callable[[Handler], Handler]:
        """Register the decorated handler as ``name``."""
        def decorate(handler: Handler) -> Handler:
            self._methods[name] = MethodSpec(name, handler, required, json_input, token_type)
            return handler
        return decorate

    def get(self, name: str) -> MethodSpec | None:
        """The method called ``name``, if registered."""
        return self._methods.get(name)

    def names(self) -> list[str]:
        """Every registered method name, sorted."""
        return sorted(self._methods)


@dataclass(frozen=True)
class ApiCall:
    """One Web API call as the emulator saw it (``params`` without the token)."""

    method: str
    params: dict[str, Any]
    ok: bool
    error: str | None
    status: int
    ts: float
    ignored_params: dict[str, Any] = field(default_factory=dict)
    """Arguments sent in a JSON body to a method that does not read JSON (Slack ignores them)."""


class CallLog:
    """Thread-safe, ordered record of API calls, with waiting for a count."""

    def __init__(self) -> None:
        self._calls: list[ApiCall] = []
        self._changed = threading.Condition()

    def add(self, call: ApiCall) -> None:
        """Append a call and wake waiters."""
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def snapshot(self) -> list[ApiCall]:
        """All calls so far, in order."""
        with self._changed:
            return list(self._calls)

    def wait_for(self, method: str, count: int, timeout: float) -> list[ApiCall]:
        """Calls to ``method`` once there are at least ``count`` (``TimeoutError`` otherwise)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [c for c in self._calls if c.method == method]
                remaining = deadline - time.monotonic()
                if len(matching) >= count:
                    return matching
                if remaining <= 0:
                    raise TimeoutError(f"{len(matching)} call(s) to {method} after {timeout} s, expected {count}")
                self._changed.wait(min(remaining, 0.05))


@dataclass
class ApiRequest:
    """What a handler sees: the effective arguments, the caller and the workspace."""

    method: str
    params: dict[str, Any]
    user_id: str
    workspace: Workspace

    def get(self, name: str, default: str | None = None) -> str | None:
        """A string argument (``None``/``default`` when absent or empty)."""
        value = self.params.get(name)
        if value is None or value == "":
            return default
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)

    def require(self, name: str, code: str | None = None) -> str:
        """A string argument that must be present (``code`` or ``invalid_arguments`` if not)."""
        value = self.get(name)
        if value is None:
            raise ApiError(code) if code else ApiError.invalid_arguments(f"missing required field: {name}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean argument (``true``/``1`` in forms, real booleans in JSON)."""
        value = self.params.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes")

    def integer(self, name: str, default: int, *, minimum: int = 1, maximum: int | None = None,
                error: str = "invalid_limit") -> int:
        """An integer argument within bounds (values above ``maximum`` are capped, as Slack does)."""
        value = self.params.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ApiError(error) from None
        if number == 0:
            return default
        if number < minimum:
            raise ApiError(error)
        return min(number, maximum) if maximum is not None else number

    def json_value(self, name: str, error: str = "invalid_arguments") -> Any:
        """An argument that is JSON: an object/array in a JSON body, a JSON string in a form."""
        value = self.params.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, (dict, list)):
            return value
        try:
            return json.loads(str(value))
        except json.JSONDecodeError:
            raise ApiError(error, response_metadata={"messages": [f"[ERROR] {name} is not valid JSON"]}) from None


def encode_cursor(kind: str, value: str) -> str:
    """An opaque cursor (base64 of ``kind:value``, like Slack's ``dXNlcjpVMDYxTkZUVDI=``)."""
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(cursor: str | None, kind: str) -> str | None:
    """The position a cursor encodes, ``None`` for the first page, ``invalid_cursor`` if forged."""
    if not cursor:
        return None
    try:
        found_kind, _, value = base64.b64decode(cursor.encode(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    if found_kind != kind or not value:
        raise ApiError("invalid_cursor")
    return value


@dataclass(frozen=True)
class HttpReply:
    """A response for the HTTP layer to write."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> HttpReply:
        """A JSON response."""
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json; charset=utf-8",
                                                          **(headers or {})})

    @classmethod
    def text(cls, status: int, text: str) -> HttpReply:
        """A plain-text response."""
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})


@dataclass(frozen=True)
class ParsedInput:
    """Arguments from one HTTP request, before authentication."""

    params: dict[str, Any]
    token: str | None
    ignored: dict[str, Any]
    warnings: tuple[str, ...]
    malformed: bool = False
    token_in_header: bool = False


def parse_input(spec: MethodSpec | None, query: str, headers: dict[str, str], body: bytes) -> ParsedInput:
    """Read arguments the way Slack does (see the module docstring)."""
    params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    header_token: str | None = None
    auth = lowered.get("authorization", "")
    if auth.lower().startswith("bearer "):
        header_token = auth[7:].strip()
    ignored: dict[str, Any] = {}
    warnings: list[str] = []
    malformed = False
    if body and media_type == "application/json":
        if "charset" not in content_type.lower():
            warnings.append("missing_charset")
        try:
            decoded = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            decoded, malformed = {}, True
        if not isinstance(decoded, dict):
            decoded, malformed = {}, True
        json_token = decoded.pop("token", None)
        if json_token is not None:
            ignored["token"] = "<redacted>"
        if spec is not None and spec.json_input:
            params.update(decoded)
        else:
            ignored.update(decoded)
    elif body and media_type == "multipart/form-data":
        params.update(multipart_fields(content_type, body))
    elif body:
        params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()})
    form_token = params.pop("token", None)
    token = header_token or (str(form_token) if form_token else None)
    return ParsedInput(params, token, ignored, tuple(warnings), malformed, header_token is not None)


def multipart_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """Text fields of a multipart body (file parts as bytes)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        fields[str(name)] = data if part.get_filename() else data.decode("utf-8", "replace")
    return fields


class WebApi:
    """Runs Web API calls through Slack's contract and records them."""

    def __init__(self, workspace: Workspace, registry: MethodRegistry, *, bot_token: str, limiter: RateLimiter,
                 faults: FaultInjector, calls: CallLog, app_token: str | None = None) -> None:
        self.workspace = workspace
        self.registry = registry
        self.bot_token = bot_token
        self.app_token = app_token
        self.limiter = limiter
        self.faults = faults
        self.calls = calls

    def handle(self, method: str, query: str, headers: dict[str, str], body: bytes) -> HttpReply:
        """Answer one ``/api/<method>`` request."""
        spec = self.registry.get(method)
        parsed = parse_input(spec, query, headers, body)
        status, payload, extra_headers = self._run(spec, method, parsed)
        if parsed.warnings and status == 200:
            payload["warning"] = ",".join(parsed.warnings)
            payload.setdefault("response_metadata", {}).setdefault("warnings", []).extend(parsed.warnings)
        self.calls.add(ApiCall(method, dict(parsed.params), bool(payload.get("ok")), payload.get("error"), status,
                               time.time(), dict(parsed.ignored)))
        return HttpReply.json(status, payload, extra_headers)

    def _run(self, spec: MethodSpec | None, method: str,
             parsed: ParsedInput) -> tuple[int, dict[str, Any], dict[str, str]]:
        if spec is None:
            return 200, {"ok": False, "error": "unknown_method", "req_method": method}, {}
        if parsed.malformed:
            return 200, {"ok": False, "error": "invalid_json"}, {}
        refused = self._refuse_token(spec, parsed)
        if refused:
            return 200, {"ok": False, "error": refused}, {}
        delay = self.faults.delay(method)
        if delay:
            time.sleep(delay)
        fault = self.faults.take(method)
        if fault is not None and fault.kind == "server_error":
            code = "service_unavailable" if fault.status == 503 else "internal_error"
            return fault.status, {"ok": False, "error": code}, {}
        if fault is not None and fault.kind == "ratelimited":
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)}
        channel = parsed.params.get("channel")
        decision = self.limiter.admit(parsed.token, method, str(channel) if channel else None)
        if not decision.allowed:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(decision.retry_after)}
        if fault is not None and fault.kind == "error":
            return 200, {"ok": False, "error": fault.code}, {}
        missing = [name for name in spec.required if parsed.params.get(name) in (None, "")]
        if missing:
            error = ApiError.invalid_arguments(*(f"missing required field: {name}" for name in missing))
            return 200, {"ok": False, "error": error.code, **error.extra}, {}
        request = ApiRequest(method, parsed.params, self.workspace.bot_user_id, self.workspace)
        try:
            with self.workspace.lock:
                result = spec.handler(request)
        except ApiError as error:
            return 200, {"ok": False, "error": error.code, **error.extra}, {}
        if fault is not None and fault.kind == "server_error_after":
            return fault.status, {"ok": False, "error": "internal_error"}, {}
        return 200, {"ok": True, **result}, {}

    def _refuse_token(self, spec: MethodSpec, parsed: ParsedInput) -> str | None:
        """Slack's answer to a missing, unknown or wrong kind of token, ``None`` when it may call ``spec``.

        Bot methods refuse the app-level token and app-level methods the bot token
        (``not_allowed_token_type``); ``apps.connections.open`` reads its token from the
        Authorization header only.
        """
        if not parsed.token:
            return "not_authed"
        kind = {self.bot_token: "bot", self.app_token: "app"}.get(parsed.token) if parsed.token else None
        if kind is None:
            return "invalid_auth"
        if kind != spec.token_type:
            return "not_allowed_token_type"
        if kind == "app" and not parsed.token_in_header:
            return "not_authed"
        return None
