"""Catch up the channel log after downtime: back-fill every active incident's channel."""

from __future__ import annotations

import logging

from service.context import Context
from service.channel_log import backfill
from incident.clock import to_epoch
from incident.errors import SlackApiError
from incident.timeline import EntryKind

log = logging.getLogger(__name__)


def backfill_active_incidents(services: Context) -> dict[str, int]:
    """Back-fill each active incident from its opening; returns entries added per incident."""
    added: dict[str, int] = {}
    for incident in services.store.active():
        try:
            added[incident.id] = backfill(services.slack, services.store.timeline(incident.id), incident.channel_id,
                                          oldest=f"{to_epoch(incident.opened_at) - 1:.6f}")
        except SlackApiError as error:
            log.warning("back-fill of incident %s failed: %s", incident.id, error.code)
            services.store.timeline(incident.id).append(EntryKind.BOT_ERROR, "bot", {"step": "backfill", "error": error.code},
                                                        at=services.clock.now())
    if any(added.values()):
        log.info("back-filled the channel log: %s", added)
    return added
