"""Run the assessment: every check at once (or in two phases), each under its own timeout, all under one budget.

Each check runs in its own daemon thread. The assessor waits for results until each check's deadline
(its own timeout, capped by the overall budget); a check that has not answered by then is reported as
``timeout`` and its thread is abandoned (its requests end at their own timeout; nothing waits for it).
When the apiserver check finds the API server unreachable, the checks that need it are reported as
``skipped`` at once instead of waiting out their timeouts. A LIST that several checks declare
(``CheckSpec.shared``) is read once and handed to each of them (:class:`kube.client.SharedList`); its
requests run until the latest of its readers' deadlines. A check's LISTs stop a little before its
deadline, so a check that cannot finish still reports what it covered (``kube.checks.partial``);
the assessor's ``timeout`` is the backstop for a check that does not even manage that. ``on_check_done`` is called, in the caller's
thread, for every result as it arrives (the Slack job updates its progress message from it).

After a recovery step the job asks for two phases (``first``): the checks that decide the step's pattern
run on their own, ``on_first`` gets their results (the early delta), then the rest run; a check that the
API server's unreachability skipped in the first phase is not started in the second.

Used by ``workers/assess.py`` (the RQ job), ``workers/assess_cli.py`` and the benchmark.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from incident.assessment import Assessment, CheckResult
from incident.errors import ClusterError, ClusterUnreachable, NotPermitted
from incident.runbook import THRESHOLDS, Thresholds
from incident.settings import Settings
from incident.verdict import decide
from kube.checks import CheckContext, CheckSpec, Finding, default_checks
from kube.client import KubeApi, ListRequest, SharedList

log = logging.getLogger(__name__)

OnCheckDone = Callable[[CheckResult], None]
OnFirstDone = Callable[[list[CheckResult]], None]


@dataclass
class Assessor:
    """Runs a set of checks against one cluster and draws the verdict."""

    kube: KubeApi
    checks: Sequence[CheckSpec] = field(default_factory=default_checks)
    budget_s: float = 60.0
    thresholds: Thresholds = THRESHOLDS
    etcd_endpoints: tuple[str, ...] = ()
    event_window: timedelta = timedelta(minutes=15)
    cluster: str = "default"
    wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    @classmethod
    def from_settings(cls, settings: Settings, kube: KubeApi | None = None,
                      checks: Sequence[CheckSpec] | None = None) -> "Assessor":
        return cls(
            kube=kube or KubeApi.from_settings(settings),
            checks=checks if checks is not None else default_checks(),
            budget_s=settings.assessment_budget_seconds,
            etcd_endpoints=tuple(settings.etcd_endpoints),
            event_window=timedelta(minutes=settings.warning_event_window_minutes),
            cluster=settings.cluster_name,
        )

    def run(self, on_check_done: OnCheckDone | None = None, *, first: Collection[str] = (),
            on_first: OnFirstDone | None = None) -> Assessment:
        """Run every check; returns within the budget (plus a few milliseconds), whatever the cluster does.

        ``first``: names of checks to run on their own first (the cheap checks that decide one pattern, after a
        recovery step); ``on_first`` gets their results, in this thread, before the rest start. Without it,
        every check starts at once.
        """
        started_wall = self.wall_clock()
        start = time.monotonic()
        budget_end = start + self.budget_s
        results: "queue.Queue[tuple[str, CheckResult]]" = queue.Queue()
        head = [spec for spec in self.checks if spec.name in first]
        phases = [head, [spec for spec in self.checks if spec.name not in first]] if head else [list(self.checks)]
        done: dict[str, CheckResult] = {}

        def finish(result: CheckResult) -> None:
            done[result.name] = result
            if on_check_done is not None:
                try:
                    on_check_done(result)
                except Exception:  # noqa: BLE001 - progress reporting must never stop the assessment
                    log.exception("on_check_done failed for %s", result.name)

        for number, phase in enumerate(phases):
            phase = [spec for spec in phase if spec.name not in done]  # skipped already: the API server is gone
            self._run_phase(phase, start, budget_end, results, done, finish)
            if number == 0 and len(phases) > 1 and on_first is not None:
                try:
                    on_first([done[spec.name] for spec in head])
                except Exception:  # noqa: BLE001 - an early look must never stop the assessment
                    log.exception("on_first failed")

        ordered = [done[spec.name] for spec in self.checks]
        return Assessment(
            cluster=self.cluster, started_at=started_wall,
            finished_at=started_wall + timedelta(seconds=time.monotonic() - start),
            budget_s=self.budget_s, checks=ordered, verdict=decide(ordered, thresholds=self.thresholds),
            server=self.kube.server,
        )

    def _run_phase(self, phase: Sequence[CheckSpec], start: float, budget_end: float,
                   results: "queue.Queue[tuple[str, CheckResult]]", done: dict[str, CheckResult],
                   finish: OnCheckDone) -> None:
        """Start ``phase``'s checks at once, each under its own timeout (capped by the budget), and wait for them."""
        now = phase_start = time.monotonic()
        deadlines: dict[str, float] = {}
        cut_by_budget: set[str] = set()
        specs = {spec.name: spec for spec in self.checks}
        for spec in phase:
            deadlines[spec.name] = min(now + spec.timeout_s, budget_end)
            if budget_end < now + spec.timeout_s:
                cut_by_budget.add(spec.name)
        shared = self._shared_lists(phase, deadlines)
        for spec in phase:
            context = CheckContext(self.kube.with_deadline(deadlines[spec.name], spec.name), self.thresholds,
                                   self.etcd_endpoints, self.event_window, self.wall_clock, shared)
            thread = threading.Thread(target=_run_one, args=(spec, context, results), name=f"check-{spec.name}", daemon=True)
            thread.start()

        while any(name not in done for name in deadlines):
            waiting = [name for name in deadlines if name not in done]
            wait = min(deadlines[name] for name in waiting) - time.monotonic()
            try:
                name, result = results.get(timeout=max(wait, 0.0))
            except queue.Empty:
                now = time.monotonic()
                for name in waiting:
                    if deadlines[name] <= now:
                        finish(_timed_out(specs[name], deadlines[name] - phase_start, name in cut_by_budget))
                continue
            if name in done:
                continue  # arrived after being reported as timed out (or skipped): too late, dropped
            finish(result)
            if name == "apiserver" and result.facts.get("reachable") is False:
                reason = result.facts.get("error", "unreachable")
                for other in [n for n in specs if n not in done and specs[n].needs_api]:
                    finish(CheckResult(other, "skipped", f"not run: API server unreachable ({reason})",
                                       {}, time.monotonic() - start, specs[other].title))

    def _shared_lists(self, phase: Sequence[CheckSpec], deadlines: dict[str, float]) -> dict[ListRequest, SharedList]:
        """One :class:`SharedList` per LIST that two or more of the phase's checks declare."""
        readers: dict[ListRequest, list[str]] = {}
        for spec in phase:
            for request in spec.shared:
                readers.setdefault(request, []).append(spec.name)
        return {
            request: SharedList(self.kube.with_deadline(max(deadlines[name] for name in names), f"shared {request.describe()}"),
                                request, len(names))
            for request, names in readers.items() if len(names) > 1
        }


def _timed_out(spec: CheckSpec, allowed_s: float, by_budget: bool) -> CheckResult:
    """The result of a check that overran; says whether its own timeout or the overall budget cut it."""
    if by_budget:
        summary = f"did not finish within the assessment budget ({allowed_s:.3g} s)"
    else:
        summary = f"did not finish within its {spec.timeout_s:g} s timeout"
    return CheckResult(spec.name, "timeout", summary, {}, allowed_s, spec.title)


def _run_one(spec: CheckSpec, context: CheckContext, results: "queue.Queue[tuple[str, CheckResult]]") -> None:
    started = time.monotonic()
    try:
        finding = spec.run(context)
    except ClusterUnreachable as error:
        finding = Finding("error", f"could not reach the API server: {error.message}", {"error": error.message})
    except NotPermitted as error:
        finding = Finding("error", f"not permitted: {error.message}", {"error": error.message, "hint": error.hint})
    except ClusterError as error:
        finding = Finding("error", error.message, {"error": error.message})
    except OSError as error:
        finding = Finding("error", f"could not connect: {error}", {"error": str(error)})
    except Exception as error:  # noqa: BLE001 - one broken check must not take the assessment down
        log.exception("check %s crashed", spec.name)
        finding = Finding("error", f"check crashed: {type(error).__name__}: {error}", {"error": repr(error)})
    finally:
        context.close()
    result = CheckResult(spec.name, finding.status, finding.summary, finding.facts, time.monotonic() - started, spec.title)
    results.put((spec.name, result))


def assess(settings: Settings, on_check_done: OnCheckDone | None = None, kube: KubeApi | None = None,
           checks: Sequence[CheckSpec] | None = None) -> Assessment:
    """Run the full assessment (or ``checks``) for the configured cluster; a client created here is closed after."""
    own = kube is None
    kube = kube or KubeApi.from_settings(settings)
    try:
        return Assessor.from_settings(settings, kube, checks).run(on_check_done)
    finally:
        if own:
            # Abandoned threads may still hold connections; closing the pool lets them fail fast.
            threading.Thread(target=kube.close, daemon=True).start()
