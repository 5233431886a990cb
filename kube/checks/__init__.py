"""The assessment's checks: what each one needs, what it returns, and the default set.

A check is a plain function ``run(ctx: CheckContext) -> Finding``; I/O stays in that function, the
parsing of API objects lives in pure helpers next to it (unit-tested on JSON built from the client's
model classes). :func:`default_checks` lists them explicitly, so tests and the CLI can run any subset.

At scale (5,000 nodes) the rules are: read each LIST page by page and fold every page into a small
tally (counts, capped name lists) as it arrives — memory follows the page size, not the cluster; let
the apiserver filter (field and label selectors) wherever the facts allow; say per LIST how fresh it
must be (``CONSISTENT`` / ``CACHED`` in :mod:`kube.client`; each module's docstring says which and
why); read a LIST that several checks need once (``CheckSpec.shared``, served by
:class:`kube.client.SharedList`); and when a LIST cannot be finished in time, report what was read
(:func:`partial`) — a failure seen in part of the cluster stands, but a part never passes.

Modules: ``apiserver`` (apiserver, etcd), ``nodes`` (nodes, disruption budgets), ``kube_system``,
``dns``, ``networking`` (pending pods, pod network, ingress), ``events``, ``certificates``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from incident.assessment import CheckStatus
from incident.runbook import THRESHOLDS, Thresholds
from kube.client import KubeApi, ListRequest, Pages, SharedList, parse_time


@dataclass(frozen=True)
class Finding:
    """What a check found: status, one human line, and facts for the verdict (JSON-serializable)."""

    status: CheckStatus
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckContext:
    """Everything a check may use; ``kube`` never lets a request outlive the check's deadline."""

    kube: KubeApi
    thresholds: Thresholds = THRESHOLDS
    etcd_endpoints: tuple[str, ...] = ()
    event_window: timedelta = timedelta(minutes=15)
    wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    shared: Mapping[ListRequest, SharedList] = field(default_factory=dict)
    """LISTs read once for several checks (the assessor fills it from ``CheckSpec.shared``)."""

    opened: list[Pages] = field(default_factory=list)
    """Every LIST this check opened; :meth:`close` stops their read-ahead when the check is over."""

    def pages(self, request: ListRequest) -> Pages:
        """The LIST ``request``: this check's share of a shared read if there is one, else its own stream."""
        shared = self.shared.get(request)
        subscription = shared.subscribe(self.kube.deadline) if shared is not None else None
        pages: Pages = subscription if subscription is not None else self.kube.stream(request)
        self.opened.append(pages)
        return pages

    def close(self) -> None:
        """Release every LIST this check opened (called by the assessor after the check, however it ended)."""
        for pages in self.opened:
            pages.close()


def partial(finding: Finding, *lists: Pages) -> Finding:
    """``finding`` as it stands when some of ``lists`` stopped early (deadline or a failed page).

    A failure found in the part that was read is real evidence and stays a failure, marked partial;
    anything else becomes ``timeout`` (or ``error``) — never a pass — with what was covered. The facts
    carry ``partial: true`` and ``covered`` (items read per LIST), so the verdict and the reader know.
    """
    cut = [item for item in lists if not item.complete]
    if not cut:
        return finding
    reasons = sorted({item.cut or "stopped early" for item in cut})
    read = "; ".join(f"{item.request.describe()}: read {item.coverage()}" for item in cut)
    facts = {**finding.facts, "partial": True, "covered": {item.request.describe(): item.seen for item in lists},
             "cut": reasons}
    if finding.status == "fail":
        return Finding("fail", f"{finding.summary} [partial: {read} ({', '.join(reasons)})]", facts)
    status: CheckStatus = "timeout" if all("deadline" in reason for reason in reasons) else "error"
    return Finding(status, f"did not finish ({', '.join(reasons)}; {read}); in what was read: {finding.summary}", facts)


@dataclass(frozen=True)
class CheckSpec:
    """One check: its name (the key of its facts in the runbook), title, function and own timeout."""

    name: str
    title: str
    run: Callable[[CheckContext], Finding]
    timeout_s: float
    needs_api: bool = True
    """Whether it goes through the API server (skipped at once when the API server is unreachable)."""
    shared: tuple[ListRequest, ...] = ()
    """LISTs this check reads through ``ctx.pages`` that other checks may read too (read once if so)."""


def default_checks() -> tuple[CheckSpec, ...]:
    """Every check of the runbook's assessment, in report order."""
    from kube.checks import apiserver, certificates, dns, events, kube_system, networking, nodes

    return (*apiserver.CHECKS, *nodes.CHECKS, *kube_system.CHECKS, *dns.CHECKS, *networking.CHECKS,
            *events.CHECKS, *certificates.CHECKS)


def resolve_validation_checks() -> tuple[CheckSpec, ...]:
    """The checks of a resolve validation: the default set, with Warning events about deleted objects told apart."""
    from kube.checks import events

    return tuple(events.RESOLVE_CHECK if spec.name == events.RESOLVE_CHECK.name else spec for spec in default_checks())


# -- helpers shared by the checks' parsers -----------------------------------------------------------


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: Mapping[str, Any], *, namespaced: bool = True) -> str:
    metadata = meta(obj)
    name = str(metadata.get("name", "?"))
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespaced and namespace else name


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or ():
        if item.get("type") == kind:
            return item
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    ready = condition(pod, "Ready")
    return bool(ready and ready.get("status") == "True")


def age_s(value: str | None, now: datetime) -> float | None:
    moment = parse_time(value)
    return None if moment is None else (now - moment).total_seconds()


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When an event (core/v1) last happened: series, lastTimestamp, eventTime, or creation."""
    series = event.get("series") or {}
    for value in (series.get("lastObservedTime"), event.get("lastTimestamp"), event.get("eventTime"),
                  meta(event).get("creationTimestamp")):
        moment = parse_time(value)
        if moment is not None:
            return moment
    return None


def event_count(event: Mapping[str, Any]) -> int:
    series = event.get("series") or {}
    return int(series.get("count") or event.get("count") or 1)


def workload_of(pod: Mapping[str, Any]) -> str:
    """The pod's controller as ``Kind/name`` (ReplicaSet hashes stripped to the Deployment)."""
    for ref in meta(pod).get("ownerReferences") or ():
        if ref.get("controller", True):
            kind, name = str(ref.get("kind")), str(ref.get("name"))
            if kind == "ReplicaSet" and "-" in name:
                return f"Deployment/{name.rsplit('-', 1)[0]}"
            return f"{kind}/{name}"
    return f"Pod/{meta(pod).get('name', '?')}"


def top(counts: Mapping[str, int], limit: int) -> dict[str, int]:
    """The ``limit`` largest entries, largest first."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit])


def capped(items: Iterable[str], limit: int) -> list[str]:
    """At most ``limit`` items, then one "… N more" marker, so facts stay small at scale."""
    out: list[str] = []
    extra = 0
    for item in items:
        if len(out) < limit:
            out.append(item)
        else:
            extra += 1
    if extra:
        out.append(f"… {extra} more")
    return out


class CappedNames:
    """A name list that stays small at scale: the count of every name added, and the ``limit`` first in order.

    ``facts()`` equals ``capped(sorted(all_names), limit)`` without holding all names: 5,000 failing nodes
    cost ``limit`` strings, not 5,000.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._first: list[str] = []

    def add(self, name: str) -> None:
        self.count += 1
        if len(self._first) < self.limit:
            bisect.insort(self._first, name)
        elif self.limit and name < self._first[-1]:
            bisect.insort(self._first, name)
            self._first.pop()

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def first(self, n: int | None = None) -> list[str]:
        """The first ``n`` (default all kept) names in order."""
        return list(self._first[:n])

    def facts(self) -> list[str]:
        extra = self.count - len(self._first)
        return self._first + ([f"… {extra} more"] if extra else [])
