"""What every action executor stands on: one identity's API client, its error mapping, and the executor shape.

:class:`ClusterApi` is the cluster as one identity sees it (the bot's own, or the requester's through
``kube.impersonation``): the generated ``core``/``apps`` clients, the request timeout, and :meth:`ClusterApi.call`,
which turns every Kubernetes failure into the bot's error for it (:func:`api_error`: :class:`ObjectNotFound`,
:class:`NotPermitted`, :class:`ClusterError`, :class:`ClusterUnreachable`) with a message for Slack, and
:meth:`ClusterApi.say`, every text an executor shows (``templates/kube_actions.txt.j2``, one macro each).
:class:`KindExecutor` is one kind's pair of functions: ``prepare`` (validate against the live cluster, dry-run
with ``dryRun=All``, say in words what will change) and ``execute`` (the change, calling ``guard()`` — the
action lock is still ours — before every mutating call). Used by ``kube.actions.nodes`` and ``.workloads``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from incident.actions import ActionRequest, Outcome
from incident.errors import ClusterError, ClusterUnreachable, NotPermitted, ObjectNotFound
from incident.templates import TemplateRenderer, renderer_for

MERGE_PATCH = "application/merge-patch+json"
LISTED = 8
"""How many object names a summary lists before "and N more"."""

T = TypeVar("T")
Guard = Callable[[], None]
"""Raises unless the action lock is still ours; called before every mutating request."""
Progress = Callable[[str], None]
"""A line of progress for the action's thread (rate-limited by the caller)."""


def _message(error: ApiException, texts: "ActionTexts") -> str:
    """The API server's own message (plain text: the Slack template that shows it escapes it)."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or error.reason or texts.say("no_detail"))[:400]


class ActionTexts:
    """The executors' texts: one macro each of ``templates/kube_actions.txt.j2`` (plain text, escaped once
    by the Slack template that shows it)."""

    TEMPLATE = "kube_actions.txt.j2"

    def __init__(self, templates: TemplateRenderer | None = None) -> None:
        self.templates = templates or renderer_for(None)

    def say(self, macro: str, /, **arguments: Any) -> str:
        return self.templates.macro(self.TEMPLATE, macro, **arguments)


def api_error(error: Exception, what: str, verb: str, who: str, texts: ActionTexts,
              *, as_bot: bool = True) -> ClusterError | NotPermitted:
    """One Kubernetes failure → the bot's error for it, with a message saying what to do."""
    if isinstance(error, ApiException):
        status = error.status or 0
        detail = _message(error, texts)
        if status == 404:
            return ObjectNotFound(texts.say("not_found", what=what), hint=texts.say("not_found_hint"))
        if status in (401, 403):
            return NotPermitted(texts.say("not_permitted", who=who, verb=verb, what=what, detail=detail),
                                hint=texts.say("not_permitted_hint", as_bot=as_bot))
        if status == 409:
            return ClusterError(texts.say("conflict", verb=verb, what=what, detail=detail),
                                hint=texts.say("conflict_hint"))
        if status == 422:
            return ClusterError(texts.say("invalid", verb=verb, what=what, detail=detail))
        if status == 429:
            return ClusterError(texts.say("throttled", verb=verb, what=what, detail=detail))
        return ClusterError(texts.say("failed", verb=verb, what=what, status=status, detail=detail),
                            hint=texts.say("failed_hint"))
    return ClusterUnreachable(texts.say("unreachable", verb=verb, what=what, error=type(error).__name__),
                              hint=texts.say("unreachable_hint"))


class ClusterApi:
    """The cluster as one identity sees it; every request goes through :meth:`call`."""

    def __init__(self, api: k8s.ApiClient, *, request_timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, identity: str | None = None,
                 texts: ActionTexts | None = None) -> None:
        self.api = api
        self.texts = texts or ActionTexts()
        self.identity = identity
        """The Kubernetes user the API sees (impersonated), or ``None`` for the bot's own identity."""
        self.who = (self.texts.say("kube_user", identity=identity) if identity is not None
                    else self.texts.say("bot_identity"))
        """Who the API sees, for messages ("The bot's Kubernetes identity", "Kubernetes user `alice`")."""
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.timeout = request_timeout
        self.sleep = sleep

    def call(self, what: str, verb: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One request with the timeout; failures become :func:`api_error`'s errors."""
        try:
            return method(*args, _request_timeout=self.timeout, **kwargs)
        except (ApiException, Urllib3Error, OSError) as error:
            raise self.error(error, what, verb) from error

    def error(self, error: Exception, what: str, verb: str) -> ClusterError | NotPermitted:
        """:func:`api_error` for this identity."""
        return api_error(error, what, verb, self.who, self.texts, as_bot=self.identity is None)

    def say(self, macro: str, /, **arguments: Any) -> str:
        """One of the executors' texts (:class:`ActionTexts`)."""
        return self.texts.say(macro, **arguments)

    def node(self, name: str) -> k8s.V1Node:
        return self.call(self.say("node", name=name), "read", self.core.read_node, name)

    def patch_node(self, name: str, body: dict[str, Any], *, dry_run: bool) -> k8s.V1Node:
        extra = {"dry_run": "All"} if dry_run else {}
        return self.call(self.say("node", name=name), "patch", self.core.patch_node, name, body,
                         _content_type=MERGE_PATCH, **extra)


@dataclass(frozen=True)
class KindExecutor:
    """How one kind of action (``incident.action_kinds``) is dry-run and run."""

    kind: str
    prepare: Callable[[ClusterApi, ActionRequest], str]
    """Validate against the live cluster and dry-run; the human summary of what will change. Raises an
    ``IncidentBotError`` to reject the request (nothing changed)."""
    execute: Callable[[ClusterApi, ActionRequest, Guard, Progress], Outcome]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
