"""Warning events of the last N minutes, grouped by reason and by object kind, with the top offenders.

One paginated LIST with ``fieldSelector=type=Warning`` (events cannot be filtered by time on the server;
older ones are skipped as they stream past). It is a **consistent** read although events are the recent
past and a cache read (``resourceVersion=0``) would do for the facts: the watch cache answers such a
LIST whole, ignoring ``limit``, and the Warning events are the one LIST whose size follows the
cluster's trouble — memory must stay bounded by a page exactly then. The same LIST feeds
``pod_network``'s IP-exhaustion evidence (``WARNING_EVENTS`` is shared). Crash back-offs are singled
out as per-object evidence for the single-workload pattern: outside kube-system (``backoff_objects``)
they are its only sign; in kube-system (``backoff_system_objects``) only supporting evidence, because
the ``kube_system`` check reads those pods as they are now, and a pod a restart replaced leaves its
BackOff events behind for the whole window. Memory grows with the distinct (object, reason) pairs of the window — the apiserver already folds
repeats of one into its ``count`` — never with the pages read.

Events outlive their objects: a DaemonSet pod that failed scheduling on a node deleted a second later
leaves a ``FailedScheduling`` Warning for an hour. The resolve validation (``RESOLVE_CHECK``) therefore
also looks up the most frequent Pod and Node offenders — at most :data:`GONE_LOOKUP_LIMIT` LISTs by
name, UID compared — and counts events about objects deleted since apart (``gone_total``), so the
recovery checklist can tell current trouble from history. The regular assessment makes no per-object
request at all (``CHECKS``): it reports every Warning of its window.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from incident.errors import ClusterError, NotPermitted
from incident.runbook import SYSTEM_NAMESPACE, THRESHOLDS, Thresholds
from kube.checks import CheckContext, CheckSpec, Finding, event_count, event_time, partial, top
from kube.client import KubeApi, ListRequest, Pages

WARNING_EVENTS = ListRequest("/api/v1/events", field_selector="type=Warning")

CRASH_BACKOFF_MARKER = "restarting failed container"
GONE_LOOKUP_LIMIT = 25
"""At most this many distinct objects are looked up; the rest count as current (the cautious side)."""
LOOKUP_PATHS = {"Pod": "/api/v1/pods", "Node": "/api/v1/nodes"}


@dataclass(frozen=True, order=True)
class InvolvedObject:
    """The object an event is about, as the event names it."""

    kind: str
    namespace: str
    name: str
    uid: str = ""

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> InvolvedObject:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        return cls(str(involved.get("kind") or "?"), str(involved.get("namespace") or ""),
                   str(involved.get("name")), str(involved.get("uid") or ""))

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass
class EventTally:
    """Warning events inside the window, counted per (object, reason); memory grows with objects, not events."""

    window: timedelta
    per_object: Counter[tuple[InvolvedObject, str]] = field(default_factory=Counter)
    backoff: Counter[InvolvedObject] = field(default_factory=Counter)

    def objects_by_count(self) -> list[InvolvedObject]:
        totals: Counter[InvolvedObject] = Counter()
        for (obj, _reason), count in self.per_object.items():
            totals[obj] += count
        return [obj for obj, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))]


def tally_events(events: Iterable[Mapping[str, Any]], now: datetime, window: timedelta) -> EventTally:
    """Count the events of the last ``window`` (older ones are skipped as they stream past)."""
    tally = EventTally(window)
    for event in events:
        moment = event_time(event)
        if moment is not None and now - moment > window:
            continue
        count = event_count(event)
        reason = str(event.get("reason") or "?")
        obj = InvolvedObject.of(event)
        tally.per_object[(obj, reason)] += count
        if reason == "BackOff" and CRASH_BACKOFF_MARKER in str(event.get("message") or "").lower():
            tally.backoff[obj] += count
    return tally


def summarize_events(tally: EventTally, thresholds: Thresholds = THRESHOLDS,
                     gone: frozenset[InvolvedObject] = frozenset()) -> Finding:
    """The finding; ``gone`` are objects known to be deleted since their events."""
    limit = thresholds.top_offenders
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    offenders: Counter[str] = Counter()
    current: Counter[str] = Counter()
    gone_objects: Counter[str] = Counter()
    for (obj, reason), count in tally.per_object.items():
        reasons[reason] += count
        kinds[obj.kind] += count
        offenders[f"{obj}: {reason}"] += count
        if obj in gone:
            gone_objects[str(obj)] += count
        else:
            current[f"{obj}: {reason}"] += count
    total, gone_total = sum(reasons.values()), sum(gone_objects.values())
    minutes = int(tally.window.total_seconds() // 60)
    facts = {
        "window_minutes": minutes, "total": total, "by_reason": top(reasons, limit * 2), "by_kind": top(kinds, limit * 2),
        "top_offenders": [f"{name} ×{count}" for name, count in top(offenders, limit).items()],
        "backoff_objects": [f"{obj} ×{count}" for obj, count in top(
            {str(o): c for o, c in tally.backoff.items() if o.namespace != SYSTEM_NAMESPACE}, limit).items()],
        "backoff_system_objects": [f"{obj} ×{count}" for obj, count in top(
            {str(o): c for o, c in tally.backoff.items() if o.namespace == SYSTEM_NAMESPACE}, limit).items()],
        "current_total": total - gone_total,
        "current_offenders": [f"{name} ×{count}" for name, count in top(current, limit).items()],
        "gone_total": gone_total,
        "gone_objects": [f"{name} ×{count}" for name, count in top(gone_objects, limit).items()],
    }
    if total == 0:
        return Finding("ok", f"no Warning events in the last {minutes} min", facts)
    summary = (f"{total} Warning event(s) in the last {minutes} min; top reasons: "
               + ", ".join(f"{reason} {count}" for reason, count in top(reasons, 3).items()))
    if gone_total:
        summary += f" ({gone_total} about objects deleted since)"
    return Finding("warn", summary, facts)


def find_gone(objects: Iterable[InvolvedObject], exists: Callable[[InvolvedObject], bool],
              limit: int = GONE_LOOKUP_LIMIT) -> frozenset[InvolvedObject]:
    """Which of the first ``limit`` lookup-able objects no longer exist (unknown counts as existing)."""
    candidates = itertools.islice((obj for obj in objects if obj.kind in LOOKUP_PATHS), limit)
    return frozenset(obj for obj in candidates if not exists(obj))


def object_exists(kube: KubeApi, obj: InvolvedObject) -> bool:
    """Whether the object (same UID, when the event carries one) is still there; errors answer "yes"."""
    selector = f"metadata.name={obj.name}"
    if obj.namespace:
        selector += f",metadata.namespace={obj.namespace}"
    try:
        items = kube.get_json(LOOKUP_PATHS[obj.kind], {"fieldSelector": selector}).get("items") or []
    except (ClusterError, NotPermitted):
        return True
    if not items:
        return False
    return not obj.uid or str((items[0].get("metadata") or {}).get("uid") or "") == obj.uid


def _tally(ctx: CheckContext) -> tuple[EventTally, Pages]:
    events = ctx.pages(WARNING_EVENTS)
    pages = events.pages()
    head = next(pages, None)  # the first page: its Date header is the apiserver's clock for the window
    now = events.snapshot_time or ctx.kube.server_time or ctx.wall_clock()
    stream = itertools.chain(head or (), itertools.chain.from_iterable(pages))
    return tally_events(stream, now, ctx.event_window), events


def check_events(ctx: CheckContext) -> Finding:
    tally, events = _tally(ctx)
    return partial(summarize_events(tally, ctx.thresholds), events)


def check_events_telling_deleted_apart(ctx: CheckContext) -> Finding:
    tally, events = _tally(ctx)
    gone = find_gone(tally.objects_by_count(), lambda obj: object_exists(ctx.kube, obj))
    return partial(summarize_events(tally, ctx.thresholds, gone), events)


CHECKS = (CheckSpec("events", "Warning events", check_events, timeout_s=40.0, shared=(WARNING_EVENTS,)),)
RESOLVE_CHECK = CheckSpec("events", "Warning events", check_events_telling_deleted_apart, timeout_s=40.0,
                          shared=(WARNING_EVENTS,))
"""The events check of the resolve validation (same name, so the checklist reads it the same way)."""
