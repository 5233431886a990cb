"""Warning events of the last N minutes, grouped by reason and by object kind, with the top offenders.

One paginated LIST with ``fieldSelector=type=Warning`` (events cannot be filtered by time on the server;
older ones are skipped as they stream past). Crash back-offs are singled out as per-object evidence
for the single-workload pattern.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from incident.runbook import THRESHOLDS, Thresholds
from kube.checks import CheckContext, CheckSpec, Finding, event_count, event_time, top

CRASH_BACKOFF_MARKER = "restarting failed container"


def _object(event: Mapping[str, Any]) -> str:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    namespace = involved.get("namespace")
    name = f"{namespace}/{involved.get('name')}" if namespace else str(involved.get("name"))
    return f"{involved.get('kind', '?')} {name}"


def summarize_events(events: Iterable[Mapping[str, Any]], now: datetime, window: timedelta,
                     thresholds: Thresholds = THRESHOLDS) -> Finding:
    limit = thresholds.top_offenders
    total = 0
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    backoff: Counter[str] = Counter()
    for event in events:
        moment = event_time(event)
        if moment is not None and now - moment > window:
            continue
        count = event_count(event)
        total += count
        reason = str(event.get("reason") or "?")
        reasons[reason] += count
        kinds[str((event.get("involvedObject") or {}).get("kind") or "?")] += count
        obj = _object(event)
        objects[f"{obj}: {reason}"] += count
        if reason == "BackOff" and CRASH_BACKOFF_MARKER in str(event.get("message") or "").lower():
            backoff[obj] += count
    minutes = int(window.total_seconds() // 60)
    facts = {
        "window_minutes": minutes, "total": total, "by_reason": top(reasons, limit * 2), "by_kind": top(kinds, limit * 2),
        "top_offenders": [f"{obj} ×{count}" for obj, count in top(objects, limit).items()],
        "backoff_objects": [f"{obj} ×{count}" for obj, count in top(backoff, limit).items()],
    }
    if total == 0:
        return Finding("ok", f"no Warning events in the last {minutes} min", facts)
    summary = (f"{total} Warning event(s) in the last {minutes} min; top reasons: "
               + ", ".join(f"{reason} {count}" for reason, count in top(reasons, 3).items()))
    return Finding("warn", summary, facts)


def check_events(ctx: CheckContext) -> Finding:
    events = iter(ctx.kube.list_items("/api/v1/events", field_selector="type=Warning"))
    head = next(events, None)  # fetches the first page, whose Date header gives the apiserver's clock
    now = ctx.kube.server_time or ctx.wall_clock()
    stream = itertools.chain([head], events) if head is not None else ()
    return summarize_events(stream, now, ctx.event_window, ctx.thresholds)


CHECKS = (CheckSpec("events", "Warning events", check_events, timeout_s=40.0),)
