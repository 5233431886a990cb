"""What an incident knows of its linked Alertmanager alerts: ``/k8s incident status`` and the resolve path.

Read-only apart from :func:`note_resolved_while_firing`, which the resolve path
(``service.lifecycle.change_status``) calls once an incident is resolved: linked alerts that still
fire are said in the channel (through the outbox) and recorded as ``alerts_firing_at_resolve``, which
the post-mortem shows. Apart from :mod:`service.alerts` (which opens incidents through
``service.lifecycle``) so that the lifecycle can call it without an import cycle. Also the one place
that turns stored alert records into what the ``alert_*.slack.j2`` templates show (:func:`alert_lines`).
"""

from __future__ import annotations

import re
from typing import Any

from chat.blocks import text_section
from incident.alert_group import still_firing
from incident.model import Incident
from incident.timeline import EntryKind
from persistence.alert_store import AlertStore
from service import inbox
from service.context import Context

SHOWN_ALERTS = 10
"""Alerts listed by name in one message (the rest are counted)."""
STATUS_ALERTS = 20
"""Alerts listed by ``/k8s incident status``."""
_SAFE_URL = re.compile(r"https?://[^\s<>|]+")


def alert_store(services: Context) -> AlertStore:
    return AlertStore(services.redis, services.keys)


def _linked_records(services: Context, incident: Incident) -> list[dict[str, Any]]:
    store = alert_store(services)
    return [r for g in store.groups_of(incident.id) for r in store.alerts(g.id).values()]


def note_resolved_while_firing(services: Context, incident: Incident, user_id: str) -> None:
    """Called once an incident is resolved: linked alerts that still fire are said in the channel and recorded."""
    firing = still_firing(_linked_records(services, incident))
    if not firing:
        return
    services.store.timeline(incident.id).append(EntryKind.ALERTS_FIRING_AT_RESOLVE, user_id, {
        "count": len(firing),
        "alerts": [{"fingerprint": r["fingerprint"], "name": r["labels"].get("alertname", r["fingerprint"]),
                    "starts_at": r["starts_at"]} for r in firing[:50]]}, at=services.clock.now(),
        dedupe=inbox.effect_id("alerts-firing-at-resolve"))  # once, even when the resolve is replayed
    text = services.templates.render("alerts_still_firing.slack.j2", incident=incident, alerts=alert_lines(firing),
                                     count=len(firing))
    services.outbox.post(incident.channel_id, text, text_section(text), incident_id=incident.id)


def linked_alerts(services: Context, incident: Incident) -> dict[str, Any]:
    """For ``/k8s incident status``: the linked groups' alerts, those still firing first."""
    records = _linked_records(services, incident)
    firing = still_firing(records)
    resolved = sorted((r for r in records if r.get("status") != "firing"), key=lambda r: str(r.get("starts_at")))
    shown = (firing + resolved)[:STATUS_ALERTS]
    return {"total": len(records), "firing": len(firing), "lines": alert_lines(shown, limit=STATUS_ALERTS)}


def _url(value: object) -> str | None:
    """A generator link safe to put inside Slack's ``<url|label>`` (http(s), no spaces, ``<``, ``>`` or ``|``)."""
    text = str(value or "")
    return text.replace("&", "&amp;") if _SAFE_URL.fullmatch(text) else None


def alert_lines(records: list[dict[str, Any]] | tuple[dict[str, Any], ...], limit: int = SHOWN_ALERTS) -> list[dict[str, Any]]:
    """What a template shows of each alert (raw label values: the template escapes them)."""
    out = []
    for record in list(records)[:limit]:
        labels = record.get("labels") or {}
        annotations = record.get("annotations") or {}
        out.append({"name": labels.get("alertname") or record.get("fingerprint"), "labels": labels,
                    "summary": annotations.get("summary") or annotations.get("description") or "",
                    "status": record.get("status"), "starts_at": record.get("starts_at"),
                    "severity": labels.get("severity", ""), "url": _url(record.get("generator_url")),
                    "extra": {k: v for k, v in labels.items() if k not in ("alertname", "severity")}})
    return out
