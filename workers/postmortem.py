"""RQ job: draft the post-mortem from the timeline, upload it to the incident channel as a file.

Upload uses Slack's two-step external upload (``files.getUploadURLExternal``, POST the bytes,
``files.completeUploadExternal``), the only one Slack supports for new apps. The draft is also
returned, so the CLI (``k8s-incident-bot postmortem <incident>``) prints the same text.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import requests
from redis import Redis

from chat.client import SlackClient
from incident.clock import Clock, SystemClock
from incident.drill import score_drill
from incident.errors import SlackApiError
from incident.postmortem import PostmortemReport, build_report
from incident.settings import Settings, load_settings
from incident.store import IncidentStore
from incident.templates import renderer_for
from workers.connection import get_keys, get_redis

log = logging.getLogger(__name__)

TEMPLATE = "postmortem.md.j2"


def draft_postmortem(settings: Settings, redis: Redis, incident_id: str, *, clock: Clock | None = None,
                     permalink_base: str | None = None) -> tuple[PostmortemReport, str]:
    """Build and render the draft for one incident."""
    clock = clock or SystemClock()
    store = IncidentStore(redis, get_keys(settings), clock)
    incident = store.get(incident_id)
    report = build_report(
        incident, store.timeline(incident_id).iter_entries(), now=clock.now(),
        important_reaction=settings.important_reaction, action_item_reaction=settings.action_item_reaction,
        permalink_base=permalink_base,
    )
    drill = None
    if report.drill:
        cadence = timedelta(minutes=settings.status_cadence_minutes(incident.severity))
        drill = score_drill(report, str(report.drill.get("scenario", "")), str(report.drill.get("expected_pattern", "")),
                            cadence)
    return report, renderer_for(settings.templates_dir).render(TEMPLATE, report=report, drill=drill)


def upload_markdown(slack: SlackClient, channel_id: str, filename: str, title: str, content: str,
                    comment: str) -> str:
    """Share ``content`` as a file in the channel; returns the file id."""
    data = content.encode()
    ticket = slack.call("files.getUploadURLExternal", filename=filename, length=len(data))
    response = requests.post(str(ticket["upload_url"]), files={"file": (filename, data, "text/markdown")}, timeout=30)
    if response.status_code != 200:
        raise SlackApiError("files.upload", f"http_{response.status_code}")
    file_id = str(ticket["file_id"])
    slack.call("files.completeUploadExternal", files=[{"id": file_id, "title": title}], channel_id=channel_id,
               initial_comment=comment)
    return file_id


def _permalink_base(slack: SlackClient) -> str | None:
    try:
        url = slack.call("auth.test").get("url")
    except SlackApiError:
        return None
    return str(url) if url else None


def post_postmortem(incident_id: str, requested_by: str = "bot") -> dict[str, Any]:
    """The RQ job: draft, upload to the incident channel with a short summary, record on the timeline."""
    settings = load_settings("worker")
    redis = get_redis(settings)
    slack = SlackClient(settings)
    report, markdown = draft_postmortem(settings, redis, incident_id, permalink_base=_permalink_base(slack))
    incident = report.incident
    patterns = ", ".join(report.root_cause_patterns) or "no pattern identified"
    summary = (f":page_facing_up: Post-mortem draft for `{incident.id}`: {report.duration.total_seconds() / 60:.0f} min, "
               f"{len(report.actions)} action(s), {len(report.assessments)} assessment(s); hypothesis: {patterns}.")
    file_id = upload_markdown(slack, incident.channel_id, f"postmortem-{incident.id}.md",
                              f"Post-mortem draft {incident.id}", markdown, summary)
    IncidentStore(redis, get_keys(settings)).timeline(incident_id).append(
        "postmortem_drafted", requested_by, {"file_id": file_id, "bytes": len(markdown)})
    return {"file_id": file_id, "bytes": len(markdown)}
