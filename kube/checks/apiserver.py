"""API server and etcd: reachable? how fast? which readiness checks fail? is etcd healthy?

``apiserver`` times a cheap request (``GET /api/v1/namespaces?limit=1``, metadata only — nothing of the
answer is read but its arrival —, a consistent read so it goes through etcd; median of a few), ``/readyz?verbose``
and ``/livez``, flags anything slower than the runbook's 100 ms, lists failing readyz checks and reads
``/readyz/etcd`` (etcd as the apiserver sees it). ``etcd`` probes ``/health`` on the configured etcd client
URLs directly (skipped when none are configured, as on managed control planes).
"""

from __future__ import annotations

import json
import ssl
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from incident.errors import ClusterError, ClusterUnreachable
from incident.runbook import THRESHOLDS
from kube.checks import CheckContext, CheckSpec, Finding
from kube.client import METADATA_ONLY

CHEAP_REQUEST = ("/api/v1/namespaces", {"limit": 1})
ETCD_PROBE_TIMEOUT_S = 5.0


def parse_health(text: str) -> tuple[list[str], dict[str, str]]:
    """``/readyz?verbose`` output → (passing check names, failing name → detail).

    Lines look like ``[+]ping ok`` and ``[-]etcd failed: reason withheld``.
    """
    passing: list[str] = []
    failing: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[+]"):
            passing.append(line[3:].split(" ", 1)[0])
        elif line.startswith("[-]"):
            name, _, detail = line[3:].partition(" ")
            failing[name] = detail.strip() or "failed"
    return passing, failing


def latency_finding(server: str, samples_ms: Sequence[float], readyz: tuple[int, str, float] | None,
                    livez: tuple[int, str, float] | None, etcd: tuple[int, str, float] | None,
                    threshold_ms: float, degraded_ms: float = THRESHOLDS.apiserver_degraded_ms) -> Finding:
    """Judge the probes: each is (HTTP status, body, milliseconds) or ``None`` when it could not be made."""
    cheap_ms = statistics.median(samples_ms) if samples_ms else None
    facts: dict[str, object] = {"reachable": True, "server": server, "threshold_ms": threshold_ms,
                                "latency_ms": round(cheap_ms, 1) if cheap_ms is not None else None}
    slow: list[str] = []
    timings = [cheap_ms] if cheap_ms is not None else []
    if cheap_ms is not None and cheap_ms > threshold_ms:
        slow.append(f"cheap request {cheap_ms:.0f} ms")
    readyz_failed: dict[str, str] = {}
    if readyz is not None:
        status, text, elapsed_ms = readyz
        facts["readyz_ms"] = round(elapsed_ms, 1)
        timings.append(elapsed_ms)
        facts["readyz_status"] = status
        _, readyz_failed = parse_health(text)
        if status != 200 and not readyz_failed:
            readyz_failed = {"readyz": f"HTTP {status}"}
        if elapsed_ms > threshold_ms:
            slow.append(f"/readyz {elapsed_ms:.0f} ms")
    facts["readyz_failed"] = sorted(f"{name} ({detail})" for name, detail in readyz_failed.items())
    if livez is not None:
        status, text, elapsed_ms = livez
        facts["livez_ms"] = round(elapsed_ms, 1)
        timings.append(elapsed_ms)
        facts["livez_ok"] = status == 200
        facts["livez_detail"] = "ok" if status == 200 else f"HTTP {status}: {text.strip()[:200]}"
        if elapsed_ms > threshold_ms:
            slow.append(f"/livez {elapsed_ms:.0f} ms")
    if etcd is not None:
        status, text, _ = etcd
        facts["etcd_ok"] = status == 200
        facts["etcd_detail"] = "ok" if status == 200 else f"/readyz/etcd HTTP {status}: {text.strip()[:200]}"
    facts["slow"] = bool(slow)
    facts["degraded"] = any(t > degraded_ms for t in timings)
    facts["slowest"] = ", ".join(slow) + f" (> {threshold_ms:.0f} ms)" if slow else ""

    problems = []
    if facts.get("etcd_ok") is False:
        problems.append("etcd unhealthy (/readyz/etcd)")
    if readyz_failed:
        problems.append("readyz failing: " + ", ".join(sorted(readyz_failed)))
    if facts.get("livez_ok") is False:
        problems.append("livez failing")
    timing = f"{cheap_ms:.0f} ms" if cheap_ms is not None else "n/a"
    if problems:
        return Finding("fail", f"reachable ({timing}) but " + "; ".join(problems), facts)
    if facts["degraded"]:
        return Finding("fail", "very slow: " + str(facts["slowest"]), facts)
    if slow:
        return Finding("warn", "slow: " + str(facts["slowest"]), facts)
    return Finding("ok", f"reachable and ready; cheap request {timing}, /readyz {facts.get('readyz_ms', 'n/a')} ms", facts)


def _probe(ctx: CheckContext, path: str, params: dict[str, str] | None = None) -> tuple[int, str, float]:
    response = ctx.kube.get(path, params, timeout=ctx.thresholds.apiserver_probe_timeout_s,
                            accept_status=(401, 403, 404, 429, 500, 502, 503, 504))
    return response.status, response.text, response.elapsed_s * 1000


def check_apiserver(ctx: CheckContext) -> Finding:
    server = ctx.kube.server
    samples: list[float] = []
    try:
        for _ in range(ctx.thresholds.latency_samples):
            path, params = CHEAP_REQUEST
            started = time.monotonic()
            ctx.kube.get(path, params, timeout=ctx.thresholds.apiserver_probe_timeout_s, accept=METADATA_ONLY)
            samples.append((time.monotonic() - started) * 1000)
    except ClusterUnreachable as error:
        reason = error.message.split(": ", 1)[-1]
        return Finding("fail", f"API server unreachable at {server}: {reason}",
                       {"reachable": False, "server": server, "error": reason})
    except ClusterError as error:
        # It answered, with an error: reachable, but say what it answered.
        return Finding("fail", f"API server answers with errors: {error.message}",
                       {"reachable": True, "server": server, "error": error.message, "readyz_failed": [error.message]})
    readyz = _probe(ctx, "/readyz", {"verbose": "true"})
    livez = _probe(ctx, "/livez")
    etcd = _probe(ctx, "/readyz/etcd")
    return latency_finding(server, samples, readyz, livez, etcd, ctx.thresholds.apiserver_latency_ms,
                           ctx.thresholds.apiserver_degraded_ms)


def probe_etcd(endpoint: str, timeout: float = ETCD_PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """``GET <endpoint>/health`` → (healthy, detail); TLS is not verified (this only reads health)."""
    url = endpoint.rstrip("/") + "/health"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310 - configured URL
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return False, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, str(getattr(error, "reason", error))
    try:
        healthy = str(json.loads(body).get("health")).lower() == "true"
    except ValueError:
        return False, f"unexpected answer {body[:80]!r}"
    return healthy, "healthy" if healthy else body.strip()[:200]


def check_etcd(ctx: CheckContext) -> Finding:
    if not ctx.etcd_endpoints:
        return Finding("skipped", "no ETCD_ENDPOINTS configured; etcd is only seen through the apiserver's /readyz/etcd",
                       {"configured": False})
    results = {endpoint: probe_etcd(endpoint, min(ETCD_PROBE_TIMEOUT_S, ctx.kube.timeout())) for endpoint in ctx.etcd_endpoints}
    unhealthy = [f"{endpoint} ({detail})" for endpoint, (ok, detail) in results.items() if not ok]
    facts = {"configured": True, "endpoints": len(results), "unhealthy": unhealthy,
             "healthy": [endpoint for endpoint, (ok, _) in results.items() if ok]}
    if unhealthy:
        return Finding("fail", f"{len(unhealthy)} of {len(results)} etcd endpoint(s) unhealthy: " + ", ".join(unhealthy), facts)
    return Finding("ok", f"{len(results)} etcd endpoint(s) healthy", facts)


CHECKS = (
    CheckSpec("apiserver", "API server", check_apiserver, timeout_s=20.0),
    CheckSpec("etcd", "etcd (direct)", check_etcd, timeout_s=10.0, needs_api=False),
)
