"""Risky actions as the requester's own Kubernetes identity, so the cluster's RBAC decides.

With ``KUBE_IMPERSONATE`` set (Slack user ID → Kubernetes user and groups), every request of an
action — its validation, its server-side dry-run and the change itself — carries ``Impersonate-User``
and one ``Impersonate-Group`` header per group. The API server then authorizes the *person*: a user
whose RBAC lacks ``patch nodes`` gets "forbidden" at dry-run time, before anyone is asked to confirm.
Unmapped Slack users cannot run actions at all (falling back to the bot's broader identity would let
them around RBAC). The bot's own identity needs the ``impersonate`` verb on those users and groups
(``deploy/components/impersonation``).

The generated client keeps headers in a plain dict, which cannot repeat a header; the API server reads
every ``Impersonate-Group`` line separately (a comma-joined value would be *one* group), so
:class:`ImpersonatingApiClient` adds them as a multi-value urllib3 header dict on the way out.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s
from urllib3 import HTTPHeaderDict

from incident.actions import ActionRequest, Outcome
from incident.errors import NotPermitted
from incident.settings import KubeIdentity, Settings
from kube.client import build_configuration
from incident.templates import renderer_for
from kube.actions import Guard, KubeExecutor, Progress
from kube.actions.api import ActionTexts

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"


class ImpersonatingApiClient(k8s.ApiClient):
    """An ApiClient whose every request is made on behalf of ``identity``."""

    def __init__(self, configuration: k8s.Configuration, identity: KubeIdentity) -> None:
        super().__init__(configuration)
        self.identity = identity

    def call_api(self, method: str, url: str, header_params: dict[str, Any] | None = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Any = None) -> Any:
        headers = HTTPHeaderDict(header_params or {})
        headers[IMPERSONATE_USER] = self.identity.user
        for group in self.identity.groups:
            headers.add(IMPERSONATE_GROUP, group)
        return super().call_api(method, url, headers, body, post_params, _request_timeout)


class ImpersonatingExecutor:
    """The action executor that runs each request as the requester's mapped identity."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.texts = ActionTexts(renderer_for(settings.templates_dir))
        self._executors: dict[KubeIdentity, KubeExecutor] = {}

    def identity_of(self, slack_user: str) -> KubeIdentity:
        identity = self.settings.kube_impersonate.get(slack_user)
        if identity is None:
            raise NotPermitted(self.texts.say("no_identity", slack_user=slack_user),
                               hint=self.texts.say("no_identity_hint"))
        return identity

    def executor_for(self, identity: KubeIdentity) -> KubeExecutor:
        """The executor acting as ``identity`` (one client per identity, reused)."""
        if identity not in self._executors:
            client = ImpersonatingApiClient(build_configuration(self.settings), identity)
            self._executors[identity] = KubeExecutor(client, request_timeout=self.settings.kube_request_timeout_seconds,
                                                     identity=str(identity), templates=self.texts.templates)
        return self._executors[identity]

    def prepare(self, request: ActionRequest) -> str:
        identity = self.identity_of(request.requested_by)
        summary = self.executor_for(identity).prepare(request)
        return self.texts.say("runs_as", summary=summary, identity=str(identity))

    def execute(self, request: ActionRequest, guard: Guard, progress: Progress) -> Outcome:
        identity = self.identity_of(request.requested_by)
        outcome = self.executor_for(identity).execute(request, guard, progress)
        return Outcome(outcome.succeeded, self.texts.say("ran_as", text=outcome.text, identity=str(identity)))


def action_executor(settings: Settings) -> KubeExecutor | ImpersonatingExecutor:
    """The executor the settings call for: the bot's own identity, or the requester's mapped one."""
    if settings.kube_impersonate:
        return ImpersonatingExecutor(settings)
    return KubeExecutor.from_settings(settings)
