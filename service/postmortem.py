"""The post-mortem (service layer): draft it from the timeline, upload it to the incident channel as a file.

The RQ job ``workers.postmortem.post_postmortem`` calls :func:`publish_postmortem`.

Upload uses Slack's two-step external upload (``files.getUploadURLExternal``, POST the bytes,
``files.completeUploadExternal``), the only one Slack supports for new apps. The draft is also
returned, so the CLI (``k8s-incident-bot postmortem <incident>``) prints the same text.

Exactly once per request, retries included: the job is queued with one retry, and a completion
that Slack made but whose answer was lost (5xx, timeout) or a worker killed after it must not
share a second copy. Each request (the RQ job id, the same on every retry) keeps an
:class:`UploadRecord` in Redis: the ``file_id`` right after the ticket, ``done`` after the
completion. A retry that finds ``done`` only makes sure of the ``postmortem_drafted`` timeline
entry (written once, by its dedupe identity); one that finds a ``file_id`` without ``done`` asks
``files.info`` whether that file reached the incident channel before uploading afresh.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from redis import Redis
from rq import get_current_job

from chat.client import SlackClient
from incident.clock import Clock, SystemClock
from incident.drill import score_drill
from incident.errors import SlackApiError
from incident.postmortem import PostmortemReport, build_report
from incident.settings import Settings
from persistence.store import IncidentStore
from incident.templates import renderer_for
from persistence.connection import get_keys
from incident.timeline import EntryKind

log = logging.getLogger(__name__)

TEMPLATE = "postmortem.md.j2"
UPLOAD_RECORD_TTL_SECONDS = 7 * 24 * 3600
"""How long a request's upload record is kept: far beyond the job's retries and failure TTL."""
SHARE_SETTLE_WAITS: tuple[float, ...] = (1.0, 2.0, 3.0)
"""Pauses between ``files.info`` checks before a recorded file counts as never shared: Slack shares
a completed upload asynchronously, and a completion still in flight may land a moment later."""
GONE_CODES = frozenset({"file_not_found", "file_deleted"})
"""``files.info`` errors meaning the recorded file is not (or no longer) anywhere: upload afresh."""


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
                    comment: str, *, on_ticket: Callable[[str], None] | None = None) -> str:
    """Share ``content`` as a file in the channel; returns the file id.

    ``on_ticket`` is called with the file id as soon as Slack hands it out, before anything is shared.
    """
    data = content.encode()
    ticket = slack.call("files.getUploadURLExternal", filename=filename, length=len(data))
    file_id = str(ticket["file_id"])
    if on_ticket is not None:
        on_ticket(file_id)
    response = requests.post(str(ticket["upload_url"]), files={"file": (filename, data, "text/markdown")}, timeout=30)
    if response.status_code != 200:
        raise SlackApiError("files.upload", f"http_{response.status_code}")
    slack.call("files.completeUploadExternal", files=[{"id": file_id, "title": title}], channel_id=channel_id,
               initial_comment=comment)
    return file_id


def shared_in(slack: SlackClient, file_id: str, channel_id: str) -> bool:
    """Whether the file is shared in the channel, by ``files.info`` (``False`` when Slack has no such file)."""
    try:
        file = slack.call("files.info", file=file_id).get("file") or {}
    except SlackApiError as error:
        if error.code in GONE_CODES:
            return False
        raise
    channels = set(file.get("channels") or []) | set(file.get("groups") or [])
    for shares in (file.get("shares") or {}).values():
        channels |= set(shares or {})
    return channel_id in channels


@dataclass(frozen=True)
class UploadState:
    """What one post-mortem request has uploaded so far."""

    file_id: str | None = None
    done: bool = False
    size: int = 0


class UploadRecord:
    """One request's upload, in a Redis hash (``Keys.postmortem_upload``) that expires after a week."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self.key = key

    def read(self) -> UploadState:
        """The recorded state (empty when this request never got a ticket, or the record expired)."""
        raw = {k.decode(): v.decode() for k, v in self._redis.hgetall(self.key).items()}
        return UploadState(raw.get("file_id") or None, raw.get("done") == "1", int(raw.get("bytes") or 0))

    def started(self, file_id: str, size: int) -> None:
        """A ticket was issued for ``file_id`` (replacing any earlier attempt's file)."""
        self._write({"file_id": file_id, "done": "0", "bytes": str(size)})

    def finished(self) -> None:
        """The recorded file is shared in the incident channel."""
        self._write({"done": "1"})

    def _write(self, fields: dict[str, str]) -> None:
        with self._redis.pipeline() as pipe:
            pipe.hset(self.key, mapping=fields)
            pipe.expire(self.key, UPLOAD_RECORD_TTL_SECONDS)
            pipe.execute()


def _settled_share(slack: SlackClient, file_id: str, channel_id: str, waits: tuple[float, ...]) -> bool:
    """``shared_in``, asked again after each of ``waits`` while the answer is no."""
    for pause in (0.0, *waits):
        time.sleep(pause)
        if shared_in(slack, file_id, channel_id):
            return True
    return False


def _permalink_base(slack: SlackClient) -> str | None:
    try:
        url = slack.call("auth.test").get("url")
    except SlackApiError:
        return None
    return str(url) if url else None


def request_id_of_job(given: str | None = None) -> str:
    """The id that makes retries one request: the RQ job's id, else ``given``, else a fresh one."""
    job = get_current_job()
    if job is not None:
        return str(job.id)
    return given or uuid.uuid4().hex


def publish_postmortem(settings: Settings, redis: Redis, slack: SlackClient, incident_id: str, requested_by: str,
                       request_id: str, *, settle_waits: tuple[float, ...] = SHARE_SETTLE_WAITS) -> dict[str, Any]:
    """Draft and share the post-mortem once per ``request_id``, then record it on the timeline once.

    Safe to call again after any failure: a file already shared for this request is not shared again.
    """
    keys = get_keys(settings)
    store = IncidentStore(redis, keys)
    record = UploadRecord(redis, keys.postmortem_upload(incident_id, request_id))
    state = record.read()
    if state.file_id and not state.done:
        channel_id = store.get(incident_id).channel_id
        if _settled_share(slack, state.file_id, channel_id, settle_waits):
            log.info("post-mortem %s of request %s was shared before the previous attempt ended; not re-uploading",
                     state.file_id, request_id)
            record.finished()
            state = UploadState(state.file_id, True, state.size)
        else:
            log.info("post-mortem %s of request %s never reached the channel; uploading again", state.file_id,
                     request_id)
    if not state.done:
        report, markdown = draft_postmortem(settings, redis, incident_id, permalink_base=_permalink_base(slack))
        incident = report.incident
        size = len(markdown.encode())
        summary = renderer_for(settings.templates_dir).render(
            "postmortem_posted.slack.j2", incident=incident, minutes=report.duration.total_seconds() / 60,
            actions=len(report.actions), assessments=len(report.assessments), patterns=report.root_cause_patterns)
        file_id = upload_markdown(slack, incident.channel_id, f"postmortem-{incident.id}.md",
                                  f"Post-mortem draft {incident.id}", markdown, summary,
                                  on_ticket=lambda new_id: record.started(new_id, size))
        record.finished()
        state = UploadState(file_id, True, size)
    store.timeline(incident_id).append(EntryKind.POSTMORTEM_DRAFTED, requested_by, {"file_id": state.file_id,
                                                                            "bytes": state.size},
                                       dedupe=f"postmortem:{request_id}")
    return {"file_id": state.file_id, "bytes": state.size}
