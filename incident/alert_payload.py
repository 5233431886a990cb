"""Alertmanager's webhook notification (payload version 4), parsed and checked (pure).

Alertmanager's ``webhook_config`` receiver POSTs one JSON document per notification of an alert
group: ``version`` ("4"), ``groupKey`` (stable for the group as long as the route and its group
labels stay the same), ``status`` (``firing`` while any alert of the group fires), ``receiver``,
``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``, ``truncatedAlerts`` and
``alerts[]`` (``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``,
``fingerprint``). See Alertmanager's ``notify/webhook`` package and its docs' webhook section.

:func:`parse_notification` turns the request body into a :class:`Notification` or raises
:class:`incident.errors.AlertPayloadError` with every reason found (``alerts[3].fingerprint: Field
required``), so the intake can answer 400 naming them and store nothing. Label values are user
input as far as Slack is concerned (``<!channel>`` in a label is text, never a mention): everything
that shows them goes through the ``*.slack.j2`` templates, which escape them.

Used by ``bot.alert_intake`` (validation before anything is stored), ``service.alerts`` (the job
re-reads the stored payload with the same function) and :mod:`incident.alert_rules`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from incident.errors import AlertPayloadError

SUPPORTED_VERSION = "4"
"""The only webhook payload version Alertmanager has sent since 0.6 (and still sends in 0.35)."""
MAX_ALERTS = 5000
"""More alerts than this in one notification is refused (Alertmanager's ``max_alerts`` truncates below it)."""
MAX_LABELS = 100
MAX_LABEL_VALUE = 4096

LabelSet = dict[str, str]


def _bounded_labels(value: dict[str, str], what: str) -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise ValueError(f"more than {MAX_LABELS} {what}")
    for name, text in value.items():
        if not name:
            raise ValueError(f"an empty {what[:-1]} name")
        if len(text) > MAX_LABEL_VALUE:
            raise ValueError(f"{what[:-1]} {name[:40]!r} is longer than {MAX_LABEL_VALUE} characters")
    return value


class Alert(BaseModel):
    """One alert of a notification."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL", max_length=4096)
    fingerprint: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z]+$")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("an alert needs at least one label")
        return _bounded_labels(value, "labels")

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        return _bounded_labels(value, "annotations")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def name(self) -> str:
        """``alertname``, or the fingerprint when an alert has none."""
        return self.labels.get("alertname") or self.fingerprint

    @property
    def resolved_at(self) -> datetime | None:
        """``endsAt`` of a resolved alert (a firing alert's ``endsAt`` is only Alertmanager's timeout)."""
        if self.firing or self.ends_at is None or self.ends_at.year < 1970:
            return None
        return self.ends_at

    def record(self) -> dict[str, Any]:
        """The JSON form stored and written to the timeline."""
        return {"fingerprint": self.fingerprint, "status": self.status, "labels": dict(self.labels),
                "annotations": dict(self.annotations), "starts_at": self.starts_at.isoformat(),
                "ends_at": self.resolved_at.isoformat() if self.resolved_at else None,
                "generator_url": self.generator_url}


class Notification(BaseModel):
    """One webhook notification of an alert group."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    version: str
    group_key: str = Field(alias="groupKey", min_length=1, max_length=8192)
    status: Literal["firing", "resolved"]
    receiver: str = Field(default="", max_length=1024)
    group_labels: LabelSet = Field(default_factory=dict, alias="groupLabels")
    common_labels: LabelSet = Field(default_factory=dict, alias="commonLabels")
    common_annotations: LabelSet = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL", max_length=4096)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    alerts: list[Alert] = Field(min_length=1, max_length=MAX_ALERTS)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        if str(value) != SUPPORTED_VERSION:
            raise ValueError(f"version {str(value)[:20]!r} is not supported; this bot reads Alertmanager's "
                             f"webhook payload version {SUPPORTED_VERSION}")
        return str(value)

    @field_validator("group_labels", "common_labels", "common_annotations")
    @classmethod
    def _bounded(cls, value: dict[str, str]) -> dict[str, str]:
        return _bounded_labels(value, "labels")

    @property
    def group_id(self) -> str:
        """A short stable id of the alert group (``groupKey`` is long and full of quotes)."""
        return group_id(self.group_key)

    def idempotency_key(self) -> str:
        """Equal for a notification and Alertmanager's retries of it (the same content, re-sent)."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def firing(self) -> list[Alert]:
        return [alert for alert in self.alerts if alert.firing]


def group_id(group_key: str) -> str:
    """The id :attr:`Notification.group_id` gives a ``groupKey``."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:20]


def _where(location: tuple[int | str, ...]) -> str:
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_notification(body: bytes | str | dict[str, Any]) -> Notification:
    """The notification in ``body`` (raw JSON or already decoded); :class:`AlertPayloadError` naming every
    problem otherwise (its message lists the first ten and counts the rest)."""
    if isinstance(body, (bytes, str)):
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise AlertPayloadError([f"not valid JSON: {error}"]) from None
    else:
        document = body
    if not isinstance(document, dict):
        raise AlertPayloadError([f"the body must be a JSON object, not {type(document).__name__}"])
    if "version" not in document:
        raise AlertPayloadError(["version: field required (Alertmanager's webhook payload has version \"4\")"])
    try:
        return Notification.model_validate(document)
    except ValidationError as error:
        reasons = [f"{_where(item['loc'])}: {str(item['msg']).removeprefix('Value error, ')}"
                   for item in error.errors(include_input=False, include_url=False)]
        raise AlertPayloadError(reasons) from None
