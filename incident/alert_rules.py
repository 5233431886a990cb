"""What the bot does with an alert group, as data: open an incident, ask for triage, or only record it.

The rules come from ``ALERT_RULES`` (YAML or JSON inline) or ``ALERT_RULES_FILE`` (a mounted YAML
file, say a ConfigMap); without either, :data:`DEFAULT_RULES_YAML` applies. ``check-config`` lists
every problem of them at once (:func:`rule_problems`), the same way it lists the settings' problems.
An example, which is also the default::

    cluster_label: cluster          # the label naming the cluster an alert is about
    title: "{{ labels.alertname }}{% if labels[cluster_label] %} on {{ labels[cluster_label] }}{% endif %}..."
    actions:                        # first match wins; an alert no rule matches gets default_action
      - match: {severity: critical}
        action: open                # opens an incident by itself
      - match_re: {severity: "warning|error"}
        action: triage              # a message in ALERT_TRIAGE_CHANNEL: Open / Attach / Dismiss
    default_action: record          # kept (and shown if a person attaches the group), nobody is told
    severities:                     # labels → the incident's severity, first match wins
      - {match: {severity: critical}, severity: sev1}
      - {match: {severity: warning}, severity: sev2}
    default_severity: sev3

``match`` compares label values exactly, ``match_re`` as anchored regular expressions (as
Alertmanager's own ``=~`` does); a rule with both needs both. A group's action is the strongest of
its firing alerts' actions (``open`` > ``triage`` > ``record``) and its severity the highest of
theirs, so one critical alert among warnings opens the incident.

The title is a Jinja template (sandboxed; a missing label renders empty) over the first firing
alert's ``labels`` and ``annotations``, the group's ``group_labels`` and ``common_labels``,
``count`` (firing alerts) and ``cluster_label``. The result is plain text: where Slack shows it, the
``*.slack.j2`` templates escape it like any title a person typed.

Pure: used by ``incident.settings`` (``check-config``) and ``service.alerts``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from incident.alert_payload import Alert, Notification
from incident.errors import ConfigError

Action = Literal["open", "triage", "record"]
AlertSeverity = Literal["sev1", "sev2", "sev3"]
STRENGTH: dict[str, int] = {"record": 0, "triage": 1, "open": 2}
SEVERITY_RANK: dict[str, int] = {"sev1": 1, "sev2": 2, "sev3": 3}
MAX_TITLE = 150
"""As long as a title typed after ``/k8s incident open`` may be."""

DEFAULT_TITLE = ("{{ labels.alertname }}{% if labels[cluster_label] %} on {{ labels[cluster_label] }}{% endif %}"
                 "{% if annotations.summary %}: {{ annotations.summary }}{% endif %}"
                 "{% if count > 1 %} ({{ count }} alerts){% endif %}")

DEFAULT_RULES_YAML = """\
cluster_label: cluster
actions:
  - match: {severity: critical}
    action: open
  - match_re: {severity: "warning|error"}
    action: triage
default_action: record
severities:
  - {match: {severity: critical}, severity: sev1}
  - {match_re: {severity: "warning|error"}, severity: sev2}
default_severity: sev3
"""


class _Matching(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = []
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as error:
                bad.append(f"{label}: {pattern!r} is not a regular expression ({error})")
        if bad:
            raise ValueError("; ".join(bad))
        return value

    @model_validator(mode="after")
    def _something(self) -> "_Matching":
        if not self.match and not self.match_re:
            raise ValueError("a rule needs match or match_re (a rule matching everything is default_action)")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(name) != value for name, value in self.match.items()):
            return False
        return all(re.fullmatch(pattern, labels.get(name, "")) for name, pattern in self.match_re.items())


class ActionRule(_Matching):
    """Alerts matching this get ``action``."""

    action: Action


class SeverityRule(_Matching):
    """Alerts matching this have ``severity``."""

    severity: AlertSeverity


class AlertRules(BaseModel):
    """The whole rule set (see the module's docstring for the YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster_label: str = Field(default="cluster", min_length=1)
    title: str = DEFAULT_TITLE
    actions: tuple[ActionRule, ...] = ()
    default_action: Action = "record"
    severities: tuple[SeverityRule, ...] = ()
    default_severity: AlertSeverity = "sev3"

    @field_validator("title")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            _ENVIRONMENT.from_string(value)
        except TemplateError as error:
            raise ValueError(f"not a valid template: {error}") from None
        return value

    def action_of(self, alert: Alert) -> Action:
        for rule in self.actions:
            if rule.matches(alert.labels):
                return rule.action
        return self.default_action

    def severity_of(self, alert: Alert) -> str:
        for rule in self.severities:
            if rule.matches(alert.labels):
                return rule.severity
        return self.default_severity

    def uses_triage(self) -> bool:
        return self.default_action == "triage" or any(rule.action == "triage" for rule in self.actions)

    def decide(self, notification: Notification) -> "Decision":
        """What to do with a group seen for the first time (or still undecided), from its firing alerts."""
        firing = notification.firing()
        if not firing:
            return Decision("record", self.default_severity, "", self.cluster_of(notification))
        action = max((self.action_of(alert) for alert in firing), key=STRENGTH.__getitem__)
        severity = min((self.severity_of(alert) for alert in firing), key=SEVERITY_RANK.__getitem__)
        return Decision(action, severity, self.title_of(notification), self.cluster_of(notification))

    def cluster_of(self, notification: Notification) -> str:
        """The cluster label's value (common to the group, else of its first alert); empty when absent."""
        label = self.cluster_label
        if notification.common_labels.get(label):
            return notification.common_labels[label]
        return next((a.labels[label] for a in notification.alerts if a.labels.get(label)), "")

    def title_of(self, notification: Notification) -> str:
        firing = notification.firing() or notification.alerts
        first = firing[0]
        try:
            text = _ENVIRONMENT.from_string(self.title).render(
                labels=first.labels, annotations=first.annotations, group_labels=notification.group_labels,
                common_labels=notification.common_labels, count=len(firing), cluster_label=self.cluster_label)
        except TemplateError:  # a runtime error of a template that parsed (a filter on a missing label, say)
            text = ""
        text = " ".join(text.split())
        if not text:
            text = f"{first.name} ({len(firing)} alert{'s' if len(firing) != 1 else ''})"
        return text if len(text) <= MAX_TITLE else text[:MAX_TITLE - 1].rstrip() + "…"


@dataclass(frozen=True)
class Decision:
    """The rules' answer for a group: what to do, at which severity, under which title, about which cluster."""

    action: Action
    severity: str
    title: str
    cluster: str


_ENVIRONMENT = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "rules"
        problems.append(f"alert rules: {where}: {str(item['msg']).removeprefix('Value error, ')}")
    return problems


def parse_rules(text: str, source: str = "ALERT_RULES") -> AlertRules:
    """The rules in ``text`` (YAML, so JSON too); :class:`ConfigError` listing every problem otherwise."""
    try:
        document: Any = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        raise ConfigError([f"{source} is not valid YAML: {error}"]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([f"{source} must be a mapping (cluster_label, title, actions, …), not {type(document).__name__}"])
    try:
        return AlertRules.model_validate(document)
    except ValidationError as error:
        raise ConfigError([p.replace("alert rules:", f"{source}:", 1) for p in _problems(error)]) from None


def load_rules(inline: str | None, path: Path | None) -> AlertRules:
    """``ALERT_RULES`` if set, else ``ALERT_RULES_FILE`` if set, else the defaults."""
    if inline and inline.strip():
        return parse_rules(inline, "ALERT_RULES")
    if path is not None:
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError([f"ALERT_RULES_FILE {path} cannot be read: {error.strerror or error}"]) from None
        return parse_rules(text, f"ALERT_RULES_FILE {path}")
    return parse_rules(DEFAULT_RULES_YAML, "the default alert rules")


def rule_problems(inline: str | None, path: Path | None, *, triage_channel: str | None) -> list[str]:
    """Every problem of the configured rules (empty: fine), for ``check-config``."""
    try:
        rules = load_rules(inline, path)
    except ConfigError as error:
        return list(error.problems)
    if rules.uses_triage() and not triage_channel:
        return ["ALERT_TRIAGE_CHANNEL is not set, but the alert rules send alerts to triage: set it to the "
                "channel ID (C…) where triage messages go, or change those rules' action."]
    return []


def rules_json(rules: AlertRules) -> str:
    """The rules as JSON (what ``check-config`` and tests compare)."""
    return json.dumps(rules.model_dump(mode="json"), sort_keys=True)
