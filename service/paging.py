"""PagerDuty pages of accepted escalations: the Events API v2 trigger and its RQ job.

When someone escalates (:mod:`service.escalation`) and ``PAGERDUTY_ROUTING_KEY`` is set, the bot
calls :func:`request_page`, which queues the page job (``workers.page.page_escalation`` → :func:`run_page`; retried).
The job sends one ``trigger`` event with ``dedup_key`` ``<incident>-<rule>``, records the outcome
on the timeline and says it in the incident channel. A refused event (:class:`PagerDutyError`) is
final and told in the channel; 429, 5xx and network errors raise :class:`PagerDutyUnavailable`,
so RQ retries the job.
"""

from __future__ import annotations

from typing import Any

import requests
from redis import Redis
from rq.job import Job

from chat.client import SlackClient
from chat.schedule_blocks import text_blocks
from incident.cadence import CadencePolicy
from incident.errors import IncidentBotError, plain_error_text
from incident.settings import Settings
from persistence.store import IncidentStore
from incident.templates import renderer_for
from persistence.connection import get_keys
from incident.timeline import EntryKind
from service import jobs
from service.context import Context
from service.reminders import schedule_job_id

DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
BY_HAND = "by_hand"
"""The rule key of an escalation a person started from the incident header (no runbook threshold)."""
"""PagerDuty Events API v2 endpoint (to become a setting; callers may pass another URL)."""


class PagerDutyError(IncidentBotError):
    """PagerDuty refused the event (bad routing key, malformed event); retrying will not help."""


class PagerDutyUnavailable(IncidentBotError):
    """PagerDuty answered 429 or 5xx, or could not be reached; the job is retried."""


def trigger_pagerduty(routing_key: str, *, summary: str, dedup_key: str, source: str, severity: str = "critical",
                      details: dict[str, Any] | None = None, links: list[dict[str, str]] | None = None,
                      events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL, timeout: float = 10.0) -> dict[str, Any]:
    """Send an Events API v2 ``trigger``; returns PagerDuty's answer (``status``, ``dedup_key``).

    Raises :class:`PagerDutyError` for a refused event (400: fix the routing key or payload) and
    :class:`PagerDutyUnavailable` for 429/5xx/network errors (worth retrying).
    """
    event: dict[str, Any] = {
        "routing_key": routing_key, "event_action": "trigger", "dedup_key": dedup_key,
        "payload": {"summary": summary[:1024], "source": source, "severity": severity,
                    "custom_details": details or {}},
        "client": "k8s-incident-bot",
    }
    if links:
        event["links"] = links
    try:
        response = requests.post(events_url, json=event, timeout=timeout)
    except requests.RequestException as error:
        raise PagerDutyUnavailable(plain_error_text("pagerduty_unreachable", kind=error.__class__.__name__)) from error
    if response.status_code == 202:
        return dict(response.json())
    if response.status_code == 429 or response.status_code >= 500:
        raise PagerDutyUnavailable(plain_error_text("pagerduty_busy", status=response.status_code))
    try:
        message = str(response.json().get("message") or response.json().get("errors") or "")
    except ValueError:
        message = response.text[:200]
    raise PagerDutyError(plain_error_text("pagerduty_refused", status=response.status_code, message=message),
                         hint=plain_error_text("pagerduty_refused_hint"))


def request_page(settings: Settings, redis: Redis, incident_id: str, rule_key: str, requested_by: str,
                 events_url: str | None = None) -> Job:
    """Queue the PagerDuty trigger of an accepted escalation (retried on 429/5xx)."""
    return jobs.enqueue(settings, jobs.PAGE, incident_id, rule_key, requested_by,
                        events_url or pagerduty_events_url(settings), redis=redis,
                        job_id=schedule_job_id(get_keys(settings), f"page-{incident_id}-{rule_key}"))


def pagerduty_events_url(settings: Settings) -> str:
    """The Events API URL (``PAGERDUTY_EVENTS_URL``; PagerDuty's own by default)."""
    return settings.pagerduty_events_url or DEFAULT_PAGERDUTY_EVENTS_URL


def run_page(settings: Settings, redis: Redis, slack: SlackClient, incident_id: str, rule_key: str,
             requested_by: str, events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL) -> dict[str, Any]:
    """The body of the page job (``workers.page.page_escalation``)."""
    store = IncidentStore(redis, get_keys(settings))
    incident = store.get(incident_id)
    rule = None if rule_key == BY_HAND else CadencePolicy.from_settings(settings).rule(rule_key)
    label = rule.label if rule else "escalated by hand"
    templates = renderer_for(settings.templates_dir)
    dedup_key = f"{incident.id}-{rule_key}"
    timeline = store.timeline(incident.id)
    outbox = Context(settings=settings, redis=redis, slack_client=slack).outbox  # a bot's drainers send
    try:
        answer = trigger_pagerduty(
            settings.secret("pagerduty_routing_key"), dedup_key=dedup_key, source=f"k8s-incident-bot/{settings.cluster_name}",
            summary=f"{incident.severity.upper()} {incident.title}: {label} (incident {incident.id})",
            details={"incident": incident.id, "rule": rule_key, "escalated_by": requested_by,
                     "channel": incident.channel_name, "severity": incident.severity},
            events_url=events_url)
    except PagerDutyError as error:
        timeline.append(EntryKind.BOT_ERROR, "bot", {"step": "pagerduty", "rule": rule_key, "error": error.message})
        text = templates.render("escalation_prompt.slack.j2", mode="page_failed", rule=rule, incident=incident,
                                error=error.message)
        outbox.post(incident.channel_id, text, text_blocks(text), incident_id=incident.id)
        return {"paged": False, "error": error.message}
    timeline.append(EntryKind.ESCALATION_PAGED, requested_by, {"rule": rule_key, "dedup_key": answer.get("dedup_key", dedup_key)},
                    dedupe=f"escalation_paged:{dedup_key}")
    text = templates.render("escalation_prompt.slack.j2", mode="paged", rule=rule, incident=incident,
                            dedup_key=answer.get("dedup_key", dedup_key))
    outbox.post(incident.channel_id, text, text_blocks(text), incident_id=incident.id)
    return {"paged": True, "dedup_key": answer.get("dedup_key", dedup_key)}
