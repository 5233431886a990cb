"""What every action executor stands on: one identity's API client, its error mapping, and the executor shape.

:class:`ClusterApi` is the cluster as one identity sees it (the bot's own, or the requester's through
``kube.impersonation``): the generated ``core``/``apps`` clients, the request timeout, and :meth:`ClusterApi.call`,
which turns every Kubernetes failure into the bot's error for it (:func:`api_error`: :class:`ObjectNotFound`,
:class:`NotPermitted`, :class:`ClusterError`, :class:`ClusterUnreachable`) with a message for Slack.
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

MERGE_PATCH = "application/merge-patch+json"
BOT_IDENTITY = "The bot's Kubernetes identity"
LISTED = 8
"""How many object names a summary lists before "and N more"."""

T = TypeVar("T")
Guard = Callable[[], None]
"""Raises unless the action lock is still ours; called before every mutating request."""
Progress = Callable[[str], None]
"""A line of progress for the action's thread (rate-limited by the caller)."""


def api_error(error: Exception, what: str, verb: str, who: str = BOT_IDENTITY) -> ClusterError | NotPermitted:
    """One Kubernetes failure → the bot's error for it, with a message saying what to do."""
    if isinstance(error, ApiException):
        status = error.status or 0
        detail = _message(error)
        if status == 404:
            return ObjectNotFound(f"{what} does not exist.", hint="Check the name (and namespace) with kubectl get.")
        if status in (401, 403):
            hint = ("Grant the bot's service account this verb in RBAC, or run it by hand." if who == BOT_IDENTITY
                    else "The cluster's RBAC decided: ask a cluster admin to grant this identity the verb, or have "
                         "someone whose identity has it run the action.")
            return NotPermitted(f"{who} may not {verb} {what}: {detail}", hint=hint)
        if status == 409:
            return ClusterError(f"Conflict while trying to {verb} {what}: {detail}", hint="Try again.")
        if status == 422:
            return ClusterError(f"The API server refused to {verb} {what}: {detail}")
        if status == 429:
            return ClusterError(f"Too many requests while trying to {verb} {what}: {detail}")
        return ClusterError(f"The API server failed to {verb} {what} (HTTP {status}): {detail}",
                            hint="Run an assessment: the control plane may be unhealthy.")
    return ClusterUnreachable(f"The API server could not be reached to {verb} {what} ({type(error).__name__}).",
                              hint="Run an assessment: the control plane may be down.")


def _message(error: ApiException) -> str:
    """The API server's own message, made inert for mrkdwn (it may quote what was sent)."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    text = str(body.get("message") or error.reason or "no detail")[:400]
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ClusterApi:
    """The cluster as one identity sees it; every request goes through :meth:`call`."""

    def __init__(self, api: k8s.ApiClient, *, request_timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, who: str = BOT_IDENTITY) -> None:
        self.api = api
        self.who = who
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
            raise api_error(error, what, verb, self.who) from error

    def node(self, name: str) -> k8s.V1Node:
        return self.call(f"Node `{name}`", "read", self.core.read_node, name)

    def patch_node(self, name: str, body: dict[str, Any], *, dry_run: bool) -> k8s.V1Node:
        extra = {"dry_run": "All"} if dry_run else {}
        return self.call(f"Node `{name}`", "patch", self.core.patch_node, name, body, _content_type=MERGE_PATCH,
                         **extra)


@dataclass(frozen=True)
class KindExecutor:
    """How one kind of action (``incident.action_kinds``) is dry-run and run."""

    kind: str
    prepare: Callable[[ClusterApi, ActionRequest], str]
    """Validate against the live cluster and dry-run; the human summary of what will change. Raises an
    ``IncidentBotError`` to reject the request (nothing changed)."""
    execute: Callable[[ClusterApi, ActionRequest, Guard, Progress], Outcome]


def listing(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:LISTED])
    return shown + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
