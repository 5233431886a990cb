"""Fan-in for a channel that is behind: one digest now, and each incident's waiting updates in one thread reply.

Every incident's updates reach the one stakeholder channel, which Slack holds to about one message a
second. In an alert storm that channel falls minutes behind, and stakeholders would read updates that
are long out of date, one per second. When a drainer takes the stakeholder channel and finds at least
:data:`DIGEST_BACKLOG` thread replies waiting, it rewrites the channel's queue (atomically,
:meth:`persistence.outbox.OutboxStore.rewrite`):

- first, when two or more incidents wait and none was sent in the last :data:`DIGEST_INTERVAL_SECONDS`,
  **one digest post** (top level): every incident with updates waiting, its severity and status and its
  latest update, so stakeholders see where things stand within a second;
- then, in the place of each incident's first waiting reply, **one reply in its own thread** holding all
  its waiting updates in order (up to :data:`MAX_COALESCED` per reply) — every incident is still
  answered in its own thread, with each update once, in order, as it drains;
- announcements (a new incident's top-level post, whose ``ts`` becomes its thread) stay where they were,
  so each thread exists before its replies.

While the channel stays behind, every claim coalesces again (what was queued meanwhile joins its
incident's reply). Only a fresh head is coalesced (one
whose delivery has not been tried: a re-delivery may already be in Slack, and is looked up by its id
instead). The commander is told separately that stakeholders are late (:class:`service.outbox.Outbox`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from chat.blocks import text_section
from incident.errors import IncidentNotFound
from incident.templates import TemplateRenderer
from incident.timeline import EntryKind
from persistence.keys import Keys
from persistence.outbox import Claimed, OutboxStore
from persistence.store import IncidentStore

log = logging.getLogger(__name__)

DIGEST_BACKLOG = 6
"""Thread replies waiting from which a channel counts as behind and its queue is coalesced."""
DIGEST_INTERVAL_SECONDS = 60
"""At most one digest per channel in this window (coalescing the replies goes on meanwhile)."""
MAX_COALESCED = 10
"""Updates per coalesced reply (Slack allows 50 blocks a message; a long update is one 3,000-character block)."""
SCAN = 500
"""How many waiting writes are looked at."""


def _is_reply(intent: dict[str, Any]) -> bool:
    return bool(intent.get("kind") == "post" and intent.get("in_stakeholder_thread") and intent.get("incident_id")
                and not intent.get("record_ts_as"))


def _chunks(waiting: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive replies of one incident, at most :data:`MAX_COALESCED` updates (and 40 blocks) per post."""
    chunks: list[list[dict[str, Any]]] = []
    updates = blocks = 0
    for reply in waiting:
        n_updates, n_blocks = len(reply.get("coalesced") or [1]), len(reply.get("blocks") or [])
        if chunks and updates + n_updates <= MAX_COALESCED and blocks + n_blocks <= 40:
            chunks[-1].append(reply)
            updates, blocks = updates + n_updates, blocks + n_blocks
        else:
            chunks.append([reply])
            updates, blocks = n_updates, n_blocks
    return chunks


def _stable_id(members: list[dict[str, Any]], what: str) -> str:
    """The same members give the same id (a rewrite is atomic; this only keeps ids meaningful in logs)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, what + ":" + ",".join(str(m["post_id"]) for m in members)).hex


class FanIn:
    """Coalesces what waits for a channel that is behind (used by :class:`service.outbox.Drainer`)."""

    def __init__(self, redis: Redis, keys: Keys, store: OutboxStore, templates: Callable[[], TemplateRenderer]) -> None:
        self.redis, self.keys, self.store, self.templates = redis, keys, store, templates
        self.incidents = IncidentStore(redis, keys)

    def coalesce(self, claimed: Claimed, owner: str) -> bool:
        """Rewrite ``claimed.channel``'s queue if it is behind; whether it did (the channel is released then)."""
        if claimed.attempt > 1:
            return False
        raws = self.store.peek(claimed.channel, SCAN)
        intents = [json.loads(raw) for raw in raws]
        replies = [intent for intent in intents if _is_reply(intent)]
        by_incident: dict[str, list[dict[str, Any]]] = {}
        for reply in replies:
            by_incident.setdefault(str(reply["incident_id"]), []).append(reply)
        if len(replies) < DIGEST_BACKLOG:
            return False
        chunks = {incident_id: _chunks(waiting) for incident_id, waiting in by_incident.items()}
        mergeable = sum(len(c) for c in chunks.values()) < len(replies)  # fewer posts; else a rewrite would spin
        digest = len(by_incident) > 1 and bool(
            self.redis.set(self.keys.outbox_digest(claimed.channel), "1", nx=True, ex=DIGEST_INTERVAL_SECONDS))
        if not mergeable and not digest:
            return False
        rewritten = [self._digest(claimed.channel, by_incident)] if digest else []
        placed: set[str] = set()
        for intent in intents:
            if not _is_reply(intent):
                rewritten.append(intent)
                continue
            incident_id = str(intent["incident_id"])
            if incident_id in placed:
                continue
            placed.add(incident_id)
            rewritten.extend(self._merged(chunk) for chunk in chunks[incident_id])
        if not self.store.rewrite(claimed, owner, raws, rewritten):
            if digest:
                self.redis.delete(self.keys.outbox_digest(claimed.channel))
            return False
        log.info("outbox: %s was %d replies behind over %d incidents: %s%d replies now",
                 claimed.channel, len(replies), len(by_incident), "a digest and " if digest else "",
                 len(rewritten) - int(digest) - (len(intents) - len(replies)))
        return True

    def _merged(self, members: list[dict[str, Any]]) -> dict[str, Any]:
        if len(members) == 1:
            return members[0]
        first = members[0]
        text = "\n\n".join(str(m["text"]) for m in members)
        blocks = [block for m in members for block in (m.get("blocks") or [])]
        merged = [post_id for m in members for post_id in (m.get("coalesced") or [m["post_id"]])]
        return {**first, "text": text[:39_000], "blocks": blocks or None,
                "post_id": _stable_id(members, "coalesced"), "coalesced": merged}

    def _digest(self, channel: str, by_incident: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        rows = []
        for incident_id, waiting in by_incident.items():
            try:
                incident = self.incidents.get(incident_id)
            except (IncidentNotFound, RedisError):
                continue
            latest = self.incidents.timeline(incident_id).latest(EntryKind.STATUS_UPDATE)
            rows.append({"incident": incident, "waiting": len(waiting),
                         "latest": str(latest.data.get("text", "")) if latest else ""})
        text = self.templates().render("stakeholder_digest.slack.j2", rows=rows)
        members = [m for waiting in by_incident.values() for m in waiting]
        return {"kind": "post", "channel": channel, "text": text,
                "blocks": [b.to_dict() for b in text_section(text)], "thread_ts": None,
                "post_id": _stable_id(members, "digest"), "incident_id": None, "queued_at": time.time(),
                "digest_of": sorted(by_incident)}
