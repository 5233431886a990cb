"""The one settings object, read from the environment and an optional ``.env`` file.

Every tunable of the bot lives here, each field with a default (where one is safe) and a
description that doubles as the fix-it hint when the value is missing or wrong. Load it with
:func:`load_settings`, which collects *every* problem into one :class:`ConfigError` instead of
failing on the first, and never echoes a secret back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from incident.errors import ConfigError

if TYPE_CHECKING:
    from incident.alert_rules import AlertRules

Severity = Literal["sev1", "sev2", "sev3"]
RunMode = Literal["http", "socket", "worker", "any"]
CommaList = Annotated[list[str], NoDecode]

SLACK_DEFAULT_API_URL = "https://slack.com/api/"


class KubeIdentity(BaseModel):
    """A Kubernetes user (and groups) the bot impersonates for one Slack user's actions."""

    model_config = ConfigDict(frozen=True)

    user: str = Field(min_length=1)
    groups: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: object) -> object:
        return {"user": value} if isinstance(value, str) else value

    def __str__(self) -> str:
        return self.user + (f" (groups: {', '.join(self.groups)})" if self.groups else "")


class Settings(BaseSettings):
    """Configuration of the bot, its workers and its view of the cluster."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- Slack ---------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = Field(
        default=None, description="Bot user OAuth token (xoxb-…), from the Slack app's OAuth page."
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Signing secret from the Slack app's Basic Information page."
    )
    slack_app_token: SecretStr | None = Field(
        default=None, description="App-level token (xapp-…) with connections:write; only for Socket Mode."
    )
    slack_api_url: str = Field(
        default=SLACK_DEFAULT_API_URL,
        description="Base URL of the Slack Web API (GovSlack: https://slack-gov.com/api/; the local emulator's URL in the sandbox).",
    )
    stakeholder_channel: str | None = Field(
        default=None, description="Channel ID where incidents are announced and status updates go (e.g. C0123ABCD)."
    )
    incident_channel_prefix: str = Field(
        default="inc", description="Prefix of incident channel names, e.g. inc → inc-20261123-api-down."
    )
    responder_usergroup: str | None = Field(
        default=None, description="User group ID (S…) whose members are invited to every incident channel."
    )
    responder_users: CommaList = Field(
        default_factory=list, description="Comma-separated user IDs invited to every incident channel."
    )
    action_allowed_users: CommaList = Field(
        default_factory=list, description="Comma-separated user IDs allowed to request and confirm risky actions."
    )
    action_allowed_usergroups: CommaList = Field(
        default_factory=list, description="Comma-separated user group IDs whose members may run risky actions."
    )
    escalation_usergroup: str | None = Field(
        default=None, description="User group ID mentioned when an escalation prompt is accepted."
    )
    pagerduty_routing_key: SecretStr | None = Field(
        default=None, description="PagerDuty Events API v2 routing key; escalations also trigger a page when set."
    )
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue",
        description="PagerDuty Events API v2 endpoint (a proxy or the EU service region's URL can go here).",
    )
    metrics_port: int | None = Field(
        default=None, gt=0, lt=65536,
        description="Port of a worker's /metrics (default: HTTP_PORT); set it when bot and worker share a host.",
    )
    important_reaction: str = Field(
        default="pushpin", description="Reaction that marks a channel message as important for the post-mortem."
    )
    action_item_reaction: str = Field(
        default="action-item", description="Reaction that marks a channel message as a post-mortem action item."
    )

    # --- Redis / RQ ----------------------------------------------------------------------
    redis_url: str = Field(
        default="redis://localhost:6379/0", description="Redis URL for incident state, timeline and the RQ queues."
    )
    redis_sentinels: CommaList = Field(
        default_factory=list,
        description="Redis Sentinel addresses, host:port,host:port (instead of REDIS_URL): every client follows "
                    "the master they name, across a failover.")
    redis_sentinel_master: str = Field(default="mymaster", description="The master name the sentinels monitor.")
    redis_password: SecretStr | None = Field(
        default=None, description="Password of the Redis master and replicas (with REDIS_SENTINELS; put it in REDIS_URL otherwise).")
    redis_sentinel_password: SecretStr | None = Field(
        default=None, description="Password of the sentinels themselves, when they require one.")
    queue_prefix: str = Field(default="k8sbot", description="Prefix of the bot's RQ queue names and Redis keys.")

    # --- Kubernetes ----------------------------------------------------------------------
    kubeconfig: Path | None = Field(
        default=None, description="Path to a kubeconfig; unset means in-cluster config or ~/.kube/config."
    )
    kube_context: str | None = Field(default=None, description="kubeconfig context to use (default: current).")
    kube_in_cluster: bool = Field(
        default=False, description="Use the pod's service account (when the bot runs inside the cluster)."
    )
    cluster_name: str = Field(
        default="default", description="Name of the cluster; risky actions are serialized per cluster name."
    )
    etcd_endpoints: CommaList = Field(
        default_factory=list, description="Comma-separated etcd client URLs checked directly by the assessment."
    )
    kube_request_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of every Kubernetes API request."
    )
    assessment_budget_seconds: float = Field(
        default=60.0, gt=0, description="Deadline of a whole assessment; unfinished checks are reported as timed out."
    )
    clusters_file: Path | None = Field(
        default=None, description="YAML registry of the clusters this bot serves (name, mode central|agent, context, "
                                  "allowlists); unset: the one cluster of CLUSTER_NAME and KUBECONFIG.")
    default_cluster: str | None = Field(
        default=None, description="Cluster of an incident or command that names none and whose channel is not bound "
                                  "(default: the registry file's `default`, else its first cluster).")
    agent_heartbeat_seconds: int = Field(
        default=30, gt=0, description="An agent not seen for this long is down: its cluster's jobs are answered at once.")
    cluster_probe_seconds: int = Field(
        default=10, gt=0, description="How often the central workers probe each central cluster's apiserver "
                                      "(`GET /readyz`); a request for one that did not answer is refused at once.")
    warning_event_window_minutes: int = Field(
        default=15, gt=0, description="How far back the assessment looks for Warning events."
    )

    # --- Risky actions -------------------------------------------------------------------
    confirmation_ttl_seconds: int = Field(
        default=300, gt=0, description="How long a Confirm button stays valid."
    )
    action_lease_seconds: int = Field(
        default=30, gt=0, description="Lease of the per-cluster action lock; the running job renews it."
    )
    second_confirmer_for_destructive: bool = Field(
        default=False, description="Require a second person to confirm destructive actions (delete node, scale to 0)."
    )
    node_rebalance_window_seconds: int = Field(
        default=120, gt=0, description="After a restored node's labels and taints are back, how long pods may take "
                                       "to land on it before the bot reports the rebalance."
    )
    node_return_watch_minutes: int = Field(
        default=60, gt=0, description="How long after a delete node the bot watches for the node to register again."
    )
    kube_impersonate: Annotated[dict[str, KubeIdentity], NoDecode] = Field(
        default_factory=dict,
        description='Slack user ID → Kubernetes identity the actions run as (Impersonate-User/-Group), as JSON: '
                    '{"U0123ABCD": "alice@example.com", "U0456EFGH": {"user": "bob", "groups": ["sre"]}}. '
                    "Empty: actions run as the bot's own identity. Set: unmapped users cannot run actions, and the "
                    "cluster's RBAC decides for the mapped ones (the bot needs the impersonate verb).",
    )

    # --- Status cadence and escalation (minutes) -----------------------------------------
    status_cadence_sev1_minutes: int = Field(default=15, gt=0, description="Status update cadence for sev1.")
    status_cadence_sev2_minutes: int = Field(default=30, gt=0, description="Status update cadence for sev2.")
    status_cadence_sev3_minutes: int = Field(default=60, gt=0, description="Status update cadence for sev3.")
    status_grace_minutes: int = Field(
        default=5, gt=0, description="Grace after a status prompt before the overdue reminder."
    )
    escalate_control_plane_minutes: int = Field(
        default=30, gt=0, description="Control plane still failing this long after opening → escalate."
    )
    escalate_etcd_repair_minutes: int = Field(
        default=45, gt=0, description="etcd manual repair this long → stop and restore from backup."
    )
    escalate_customer_facing_minutes: int = Field(
        default=45, gt=0, description="Customer-facing outage this long → executive communication."
    )
    escalate_business_pressure_minutes: int = Field(
        default=30, gt=0, description="Business pressure this long → reassess the approach."
    )

    # --- Serving ------------------------------------------------------------------------
    http_host: str = Field(default="0.0.0.0", description="Address the HTTP server listens on.")
    http_port: int = Field(default=3000, gt=0, lt=65536, description="Port the HTTP server listens on.")
    shutdown_delay_seconds: float = Field(
        default=5.0, ge=0, le=20,
        description="On SIGTERM, how long /readyz fails while requests are still served, before the bot stops "
                    "taking them: the time the load balancer (or the Service's endpoints) needs to route around it.",
    )
    templates_dir: Path | None = Field(
        default=None, description="Directory whose templates override the bundled ones (same file names)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")

    # --- Alertmanager intake (incident.alert_payload, incident.alert_rules) ------------------
    alertmanager_token: SecretStr | None = Field(
        default=None,
        description="Bearer token Alertmanager sends to POST /alerts/alertmanager (its webhook receiver's "
                    "http_config.authorization.credentials, from a Secret); unset: the endpoint is off (404).")
    alert_rules: str | None = Field(
        default=None, description="Alert rules as YAML or JSON (which alerts open an incident, go to triage or are "
                                  "only recorded; severity mapping; cluster label; title template).")
    alert_rules_file: Path | None = Field(
        default=None, description="Path of a YAML file with the alert rules (a mounted ConfigMap); ALERT_RULES wins.")
    alert_triage_channel: str | None = Field(
        default=None, description="Channel ID where alert groups the rules send to triage are posted (C0123ABCD).")

    @field_validator("responder_users", "action_allowed_users", "action_allowed_usergroups", "etcd_endpoints",
                     "redis_sentinels", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("kube_impersonate", mode="before")
    @classmethod
    def _json_map(cls, value: object) -> object:
        """Parsed here rather than by the settings source, so bad JSON is one problem among all the others."""
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as error:
                raise ValueError(f"not valid JSON: {error}") from None
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: list[str]) -> list[str]:
        bad = []
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                bad.append(repr(address))
        if bad:
            raise ValueError(f"{', '.join(bad)} not host:port (e.g. redis-sentinel-0:26379)")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value if value.endswith("/") else value + "/"

    @field_validator("incident_channel_prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
        if not value or len(value) > 20 or not set(value) <= allowed:
            raise ValueError("must be 1-20 characters of lowercase letters, digits, - or _")
        return value

    @model_validator(mode="after")
    def _kubeconfig_exists(self) -> "Settings":
        if self.kubeconfig is not None and not self.kubeconfig.expanduser().exists():
            raise ValueError(f"KUBECONFIG file {self.kubeconfig} does not exist")
        return self

    def redis_target(self) -> str:
        """Where the bot's Redis is, for ``check-config`` and logs (never a password)."""
        if self.redis_sentinels:
            return f"Sentinel master {self.redis_sentinel_master!r} via {', '.join(self.redis_sentinels)}"
        scheme, sep, rest = self.redis_url.partition("://")
        return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else self.redis_url

    def status_cadence_minutes(self, severity: str) -> int:
        """Minutes between status updates for a severity (``sev1``…``sev3``)."""
        return {
            "sev1": self.status_cadence_sev1_minutes,
            "sev2": self.status_cadence_sev2_minutes,
            "sev3": self.status_cadence_sev3_minutes,
        }[severity]

    def secret(self, name: str) -> str:
        """The plain value of a secret field; raises ConfigError when it is unset."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError([_missing_message(name)])
        return value.get_secret_value()

    def problems_for(self, mode: RunMode) -> list[str]:
        """Every setting missing for a run mode, each as an actionable line."""
        needed: list[str] = []
        if mode in ("http", "socket", "any"):
            needed += ["slack_bot_token", "slack_signing_secret", "stakeholder_channel"]
        if mode in ("socket", "any"):
            needed.append("slack_app_token")
        problems = [_missing_message(name) for name in needed if getattr(self, name) in (None, "")]
        if self.alertmanager_token is not None or self.alert_rules or self.alert_rules_file is not None:
            problems += self.alert_rule_problems()
        # With a cluster registry (CLUSTERS_FILE), incident.clusters.registry_problems checks each cluster's access.
        if (not self.kube_in_cluster and self.kubeconfig is None and not _default_kubeconfig().exists()
                and self.clusters_file is None):
            problems.append(
                "KUBECONFIG is not set, KUBE_IN_CLUSTER is false and ~/.kube/config does not exist: "
                "set KUBECONFIG to a kubeconfig file, or KUBE_IN_CLUSTER=true inside the cluster."
            )
        return problems

    def alert_rule_problems(self) -> list[str]:
        """Every problem of the alert rules (``check-config`` lists them with the rest)."""
        from incident.alert_rules import rule_problems

        return rule_problems(self.alert_rules, self.alert_rules_file, triage_channel=self.alert_triage_channel)

    def intake_rules(self) -> "AlertRules":
        """The alert rules in force (:class:`ConfigError` listing their problems when they are invalid)."""
        from incident.alert_rules import load_rules

        return load_rules(self.alert_rules, self.alert_rules_file)


def _default_kubeconfig() -> Path:
    return Path("~/.kube/config").expanduser()


def _missing_message(field_name: str) -> str:
    field = Settings.model_fields[field_name]
    return f"{field_name.upper()} is not set: {field.description}"


def _format_validation_error(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_input=False, include_url=False):
        location = item["loc"][0] if item["loc"] else None
        message = str(item["msg"]).removeprefix("Value error, ")
        if isinstance(location, str) and location in Settings.model_fields:
            description = Settings.model_fields[location].description or ""
            problems.append(f"{location.upper()} is invalid ({message}). {description}")
        else:
            problems.append(message)
    return problems


def load_settings(mode: RunMode = "worker", **overrides: object) -> Settings:
    """Read the settings and check they suffice for ``mode``; raise ConfigError listing every problem."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = _format_validation_error(error)
        # Also report what is missing, so one run shows everything.
        try:
            partial = Settings.model_construct(**overrides)  # type: ignore[arg-type]
            problems += [p for p in partial.problems_for(mode) if p not in problems]
        except Exception:  # noqa: BLE001 - best effort on top of the real error
            pass
        raise ConfigError(problems) from None
    problems = settings.problems_for(mode)
    if problems:
        raise ConfigError(problems)
    return settings
