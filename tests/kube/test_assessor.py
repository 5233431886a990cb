"""The assessor's timing rules with stand-in checks: per-check timeouts, the overall budget, nothing dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kubernetes import client as k8s

from incident.assessment import CheckResult
from incident.errors import ClusterUnreachable
from kube.assessor import Assessor
from kube.checks import CheckContext, CheckSpec, Finding
from kube.client import KubeApi


def kube() -> KubeApi:
    return KubeApi(k8s.ApiClient(k8s.Configuration(host="https://127.0.0.1:1")))


def quick(status: str = "ok", **facts: object) -> Callable[[CheckContext], Finding]:
    return lambda ctx: Finding(status, f"{status} quickly", dict(facts))  # type: ignore[arg-type]


def sleeper(seconds: float, release: threading.Event | None = None) -> Callable[[CheckContext], Finding]:
    def run(ctx: CheckContext) -> Finding:
        (release or threading.Event()).wait(seconds)
        return Finding("ok", "finally")

    return run


def test_a_check_that_overruns_is_reported_as_timeout_and_abandoned() -> None:
    release = threading.Event()
    checks = [CheckSpec("apiserver", "API server", quick(reachable=True), 5),
              CheckSpec("events", "Warning events", sleeper(30, release), 0.3)]
    seen: list[CheckResult] = []
    started = time.monotonic()
    assessment = Assessor(kube(), checks, budget_s=10).run(seen.append)
    elapsed = time.monotonic() - started
    release.set()
    assert elapsed < 2
    events = assessment.check("events")
    assert events is not None and events.status == "timeout"
    assert events.summary == "did not finish within its 0.3 s timeout"
    assert [r.name for r in seen] == ["apiserver", "events"]
    assert [u.check for u in assessment.verdict.unchecked] == ["events"]


def test_the_overall_budget_caps_every_check() -> None:
    release = threading.Event()
    checks = [CheckSpec("nodes", "Nodes", sleeper(30, release), 45), CheckSpec("dns", "DNS", quick(), 45)]
    started = time.monotonic()
    assessment = Assessor(kube(), checks, budget_s=0.5).run()
    release.set()
    assert time.monotonic() - started < 2
    nodes = assessment.check("nodes")
    assert nodes is not None and nodes.status == "timeout" and "assessment budget" in nodes.summary
    assert assessment.check("dns").status == "ok"  # type: ignore[union-attr]
    assert [c.name for c in assessment.checks] == ["nodes", "dns"]  # report order, not arrival order


def test_exceptions_become_error_results() -> None:
    def unreachable(ctx: CheckContext) -> Finding:
        raise ClusterUnreachable("GET /api/v1/nodes: connection refused")

    def broken(ctx: CheckContext) -> Finding:
        raise KeyError("status")

    checks = [CheckSpec("nodes", "Nodes", unreachable, 5), CheckSpec("dns", "DNS", broken, 5)]
    assessment = Assessor(kube(), checks, budget_s=5).run()
    assert assessment.check("nodes").status == "error"  # type: ignore[union-attr]
    assert "connection refused" in assessment.check("nodes").summary  # type: ignore[union-attr]
    assert assessment.check("dns").summary.startswith("check crashed: KeyError")  # type: ignore[union-attr]


def test_unreachable_apiserver_skips_the_checks_that_need_it_at_once() -> None:
    release = threading.Event()
    checks = [
        CheckSpec("apiserver", "API server", quick("fail", reachable=False, error="timed out"), 5),
        CheckSpec("nodes", "Nodes", sleeper(30, release), 30),
        CheckSpec("certificates", "Certificates", quick(), 30, needs_api=False),
    ]
    started = time.monotonic()
    assessment = Assessor(kube(), checks, budget_s=60).run()
    release.set()
    assert time.monotonic() - started < 2
    nodes = assessment.check("nodes")
    assert nodes is not None and nodes.status == "skipped" and "API server unreachable (timed out)" in nodes.summary
    assert assessment.verdict.scope == "cluster-wide"
    assert "control plane unreachable" in assessment.verdict.headline


def test_a_failing_progress_callback_does_not_stop_the_assessment() -> None:
    def explode(result: CheckResult) -> None:
        raise RuntimeError("slack down")

    checks = [CheckSpec("dns", "DNS", quick(), 5), CheckSpec("nodes", "Nodes", quick(), 5)]
    assessment = Assessor(kube(), checks, budget_s=5).run(explode)
    assert [c.status for c in assessment.checks] == ["ok", "ok"]


def test_requests_never_outlive_the_check_deadline() -> None:
    api = kube().with_deadline(time.monotonic() + 0.5)
    assert api.timeout() <= 0.5
    assert kube().timeout(cap=2.0) == 2.0
    expired = kube().with_deadline(time.monotonic() - 1)
    try:
        expired.timeout()
    except ClusterUnreachable:
        pass
    else:
        raise AssertionError("a request after the deadline must not be sent")


def test_the_first_checks_run_on_their_own_and_are_handed_over_before_the_rest_start() -> None:
    started: dict[str, float] = {}

    def stamped(name: str, seconds: float) -> Callable[[CheckContext], Finding]:
        def run(ctx: CheckContext) -> Finding:
            started[name] = time.monotonic()
            time.sleep(seconds)
            return Finding("ok", name, {"reachable": True} if name == "apiserver" else {})

        return run

    checks = [CheckSpec(name, name, stamped(name, 0.2), 5) for name in ("apiserver", "dns", "nodes", "events")]
    handed: list[tuple[float, list[str]]] = []
    assessment = Assessor(kube(), checks, budget_s=10).run(
        first=("apiserver", "dns"), on_first=lambda results: handed.append((time.monotonic(), [r.name for r in results])))
    (at, names), = handed
    assert names == ["apiserver", "dns"]
    assert started["nodes"] >= at and started["events"] >= at  # the rest started after the early look
    assert [c.name for c in assessment.checks] == ["apiserver", "dns", "nodes", "events"]  # one assessment, in order
    assert all(c.status == "ok" for c in assessment.checks)


def test_an_unreachable_apiserver_in_the_first_phase_skips_the_rest_without_starting_them() -> None:
    ran: list[str] = []

    def never(ctx: CheckContext) -> Finding:
        ran.append("nodes")
        return Finding("ok", "ran")

    checks = [CheckSpec("apiserver", "API server", quick("fail", reachable=False, error="refused"), 5),
              CheckSpec("nodes", "Nodes", never, 5)]
    handed: list[list[CheckResult]] = []
    assessment = Assessor(kube(), checks, budget_s=10).run(first=("apiserver",), on_first=handed.append)
    assert [r.name for r in handed[0]] == ["apiserver"]
    assert assessment.check("nodes").status == "skipped" and ran == []  # type: ignore[union-attr]
