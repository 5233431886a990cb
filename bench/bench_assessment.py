"""Benchmark (not a test): the assessment on big sandbox clusters, sizes side by side, against its floor.

Starts one local control plane with the healthy baseline and grows it through ``--sizes`` (default
``1000x10000``: 1,000 kwok nodes and 10,000 pods; ``--sizes 1000x10000,5000x50000`` measures both in
one run, the cluster grown from the first to the second). At each size, ``--rounds`` times, interleaved:

- **assessment**: the production assessment in a fresh Python process (like a worker's work horse):
  wall time, requests, bytes received, peak RSS;
- **floor**: the cheapest requests that return the same facts (:func:`floor_requests`: every LIST the
  checks need, each once, with the same selectors, page size and read freshness, plus the apiserver
  probes), issued the same way — a fresh process, every LIST in its own thread at once, each page
  JSON-decoded and dropped, nothing else. Target: assessment ≤ 1.2× this at the largest size;
- **before** (``--compare-with REV``): the assessment of an older commit of this repository, measured in
  the same run and process set-up (its own ``bench_assessment --child-assess``), for "how much faster";
- **kubectl**: the runbook's equivalent ``kubectl`` commands in sequence (``--no-kubectl`` skips them);
- **popeye** (``bench/popeye.py``; ``--no-popeye`` skips it): a whole-cluster scan, a reference point only.

Before measuring a size it waits (up to 10 min) for the test bed to settle — every node Ready, every node
Lease renewed within 45 s — and prints what the simulated cluster looked like (nodes Ready, node Lease
ages, the load average), so a verdict at scale can be told apart from an overloaded test bed.
Targets (largest size): ≤ 1.2× the floor, ≤ ``--time-target`` s, peak RSS < 200 MB and within 20% of
the smallest size's. ``--kubeconfig`` measures an existing cluster at its current size instead.

Run: ``python -m bench.bench_assessment [--sizes 1000x10000[,5000x50000]] [--rounds 3] [--no-popeye]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.popeye import POPEYE_VERSION, ensure_popeye, run_popeye

RSS_TARGET_MB = 200.0
RSS_GROWTH_TARGET = 0.20
FLOOR_RATIO_TARGET = 1.2
TIME_TARGET_S = 5.3
REPO = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the two measured programs (each runs in a fresh child process) ----------------------------------


def child_assess(kubeconfig: str, etcd: str) -> None:
    """One full assessment; figures as one JSON line on stdout."""
    from incident.settings import Settings
    from kube.assessor import assess
    from kube.checks import default_checks
    from kube.client import KubeApi, RequestRecord

    default_checks()  # a worker has the check modules loaded before the job starts
    settings = Settings(kubeconfig=Path(kubeconfig), etcd_endpoints=[etcd] if etcd else [])
    kube = KubeApi.from_settings(settings)
    after_import = _rss_mb()
    recorder: list[RequestRecord] = []
    kube.recorder = recorder
    started = time.monotonic()
    assessment = assess(settings, kube=kube)
    wall = time.monotonic() - started
    first_pages = sorted({_key(r.path, r.params, r.accept) for r in recorder if not r.params.get("continue")})
    print(json.dumps({
        "wall_s": wall, "peak_rss_mb": _peak_mb(), "rss_after_import_mb": after_import, "requests": len(recorder),
        "bytes": sum(r.bytes for r in recorder), "headline": assessment.verdict.headline, "first_pages": first_pages,
        "patterns": [p.key for p in assessment.verdict.patterns],
        "checks": {c.name: [c.status, round(c.duration_s, 3), c.summary[:160]] for c in assessment.checks},
    }))


def _key(path: str, params: dict[str, Any], accept: str) -> str:
    shown = {k: v for k, v in params.items() if k not in ("continue",) and v not in (None, "")}
    return f"{path} {json.dumps(shown, sort_keys=True)}" + (" metadata-only" if "PartialObjectMetadata" in accept else "")


def floor_requests() -> list[tuple[str, Any]]:
    """The cheapest requests that return the assessment's facts: ``("get"|"meta", (path, params))`` or ``("list", ListRequest)``.

    Built from the checks' own request constants, each LIST once: the kube-system pods and the Warning
    events are needed by several checks but travel once; Pending and ingress-controller pods are
    filtered by the apiserver (a LIST of all pods would carry 50,000 of them); no LIST of the scale pods
    at all. Nodes, Leases and kube-system pods cannot be cut down further: the facts are in their status
    and spec, so metadata-only LISTs would not carry them.
    """
    from incident.runbook import THRESHOLDS
    from kube.checks import apiserver, dns, events, kube_system, networking, nodes

    probes = [("meta", apiserver.CHEAP_REQUEST)] * THRESHOLDS.latency_samples + [
        ("get", ("/readyz", {"verbose": "true"})), ("get", ("/livez", {})), ("get", ("/readyz/etcd", {})),
        ("get", ("/api/v1/componentstatuses", {"limit": THRESHOLDS.page_size}))]
    from kube.client import ListRequest

    lists = [nodes.NODE_LEASES, nodes.NODES, nodes.PDBS, kube_system.SYSTEM_PODS, kube_system.SYSTEM_LEASES,
             dns.DNS_DEPLOYMENT_LIST, dns.DNS_SLICES, networking.PENDING_PODS, networking.DAEMONSETS,
             events.WARNING_EVENTS, networking.ENDPOINT_SLICES, networking.SERVICES,
             *(ListRequest("/api/v1/pods", label_selector=s) for s in networking.ingress_selectors())]
    return probes + [("list", request) for request in lists]


def child_floor(kubeconfig: str) -> None:
    """The floor: every request of :func:`floor_requests` at once, pages decoded and dropped."""
    from incident.settings import Settings
    from kube.client import METADATA_ONLY, KubeApi, RequestRecord

    kube = KubeApi.from_settings(Settings(kubeconfig=Path(kubeconfig)))
    after_import = _rss_mb()
    recorder: list[RequestRecord] = []
    kube.recorder = recorder
    requests = floor_requests()

    def one(kind: str, what: Any) -> None:
        if kind in ("get", "meta"):
            path, params = what
            kube.get(path, params, accept_status=tuple(range(200, 600)),
                     **({"accept": METADATA_ONLY} if kind == "meta" else {}))
            return
        for _ in kube.list_pages(what.path, label_selector=what.label_selector, field_selector=what.field_selector,
                                 freshness=what.freshness):
            pass

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    first_pages = sorted({_key(r.path, r.params, r.accept) for r in recorder if not r.params.get("continue")})
    print(json.dumps({"wall_s": wall, "peak_rss_mb": _peak_mb(), "rss_after_import_mb": after_import,
                      "requests": len(recorder), "bytes": sum(r.bytes for r in recorder), "first_pages": first_pages}))


def _run_child(args: list[str], cwd: Path = REPO) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    output = subprocess.run([sys.executable, "-m", "bench.bench_assessment", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, check=True, timeout=600)
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


# -- references --------------------------------------------------------------------------------------


def kubectl_commands() -> list[list[str]]:
    """The runbook's manual assessment, one kubectl call per question."""
    from incident.runbook import INGRESS_CONTROLLER_NAMES

    names = ",".join(INGRESS_CONTROLLER_NAMES)
    return [
        ["get", "--raw", "/api/v1/namespaces?limit=1"],
        ["get", "--raw", "/readyz?verbose"],
        ["get", "--raw", "/livez"],
        ["get", "--raw", "/readyz/etcd"],
        ["get", "nodes", "-o", "wide"],
        ["get", "leases", "-n", "kube-node-lease"],
        ["get", "pdb", "-A"],
        ["get", "pods", "-n", "kube-system", "-o", "wide"],
        ["get", "leases", "-n", "kube-system"],
        ["get", "componentstatuses"],
        ["get", "deployments", "-n", "kube-system"],
        ["get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns"],
        ["get", "pods", "-A", "--field-selector=status.phase=Pending"],
        ["get", "daemonsets", "-A"],
        ["get", "events", "-A", "--field-selector=reason=FailedCreatePodSandBox"],
        ["get", "pods", "-A", "-l", f"app.kubernetes.io/name in ({names})"],
        ["get", "pods", "-A", "-l", f"app in ({names})"],
        ["get", "services", "-A"],
        ["get", "endpointslices", "-A"],
        ["get", "events", "-A", "--field-selector=type=Warning"],
    ]


def run_kubectl(kubectl: Path, kubeconfig: str) -> float:
    started = time.monotonic()
    for command in kubectl_commands():
        subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", *command], capture_output=True, check=False, timeout=300)
    return time.monotonic() - started


def cluster_state(kubeconfig: str) -> dict[str, Any]:
    """What the simulated cluster looks like right now: nodes Ready and how old the node Leases are."""
    from incident.settings import Settings
    from kube.checks import condition, parse_time
    from kube.client import KubeApi, ListRequest

    kube = KubeApi.from_settings(Settings(kubeconfig=Path(kubeconfig)))
    try:
        leases = kube.stream(ListRequest("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"))
        ages = []
        for lease in leases.items():
            renewed = parse_time((lease.get("spec") or {}).get("renewTime"))
            if renewed is not None and leases.snapshot_time is not None:
                ages.append((leases.snapshot_time - renewed).total_seconds())
        ready = total = 0
        for node in kube.list_items("/api/v1/nodes"):
            total += 1
            ready += (condition(node, "Ready") or {}).get("status") == "True"
    finally:
        kube.close()
    ages.sort()
    return {"nodes": total, "ready": ready,
            "lease_age_p50_s": ages[len(ages) // 2] if ages else None, "lease_age_max_s": ages[-1] if ages else None,
            "leases_over_60_s": sum(1 for age in ages if age > 60)}


# -- measuring and printing --------------------------------------------------------------------------


@dataclass
class SizeFigures:
    label: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    floor: list[dict[str, Any]] = field(default_factory=list)
    before: list[dict[str, Any]] = field(default_factory=list)
    kubectl: list[float] = field(default_factory=list)
    popeye: list[float] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)
    scale_up: dict[str, float] = field(default_factory=dict)

    def median(self, runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs) if runs else float("nan")


def settle(kubeconfig: str, say: Callable[[str], None], timeout: float = 600.0) -> dict[str, Any]:
    """Wait (up to ``timeout``) until every node is Ready and every node Lease younger than 45 s; the last state.

    Measuring an unsettled test bed would time a cluster in trouble: the assessment would rightly say so."""
    started = time.monotonic()
    while True:
        state = cluster_state(kubeconfig)
        fresh = state["lease_age_max_s"] is not None and state["lease_age_max_s"] < 45
        if (state["ready"] == state["nodes"] and fresh) or time.monotonic() - started > timeout:
            waited = time.monotonic() - started
            say(f"  cluster {'settled' if fresh and state['ready'] == state['nodes'] else 'did NOT settle'} "
                f"after {waited:.0f} s: {state}")
            return {**state, "settle_s": waited}
        time.sleep(5)


def measure(figures: SizeFigures, kubeconfig: str, etcd: str, kubectl: Path | None, rounds: int,
            popeye: Path | None, before: Path | None, say: Callable[[str], None]) -> None:
    figures.state = settle(kubeconfig, say)
    for round_ in range(1, rounds + 1):
        figures.load.append(os.getloadavg()[0])
        figures.rounds.append(_run_child(["--child-assess", kubeconfig, etcd]))
        figures.floor.append(_run_child(["--child-floor", kubeconfig]))
        if before is not None:
            figures.before.append(_run_child(["--child-assess", kubeconfig, etcd], cwd=before))
        if kubectl is not None:
            figures.kubectl.append(run_kubectl(kubectl, kubeconfig))
        if popeye is not None:
            figures.popeye.append(run_popeye(popeye, kubeconfig)[0])
        last = figures.rounds[-1]
        say(f"  round {round_}: assessment {last['wall_s']:.2f} s ({last['requests']} requests, "
            f"{last['bytes'] / 1e6:.1f} MB, {last['peak_rss_mb']:.0f} MB RSS), floor {figures.floor[-1]['wall_s']:.2f} s"
            + (f", before {figures.before[-1]['wall_s']:.2f} s" if figures.before else "")
            + (f", kubectl {figures.kubectl[-1]:.2f} s" if figures.kubectl else "")
            + (f", popeye {figures.popeye[-1]:.1f} s" if figures.popeye else "")
            + f"; load {figures.load[-1]:.1f}")
    figures.load.append(os.getloadavg()[0])
    mine, floor = set(figures.rounds[-1]["first_pages"]), set(figures.floor[-1]["first_pages"])
    if mine != floor:
        say(f"  note: requests differ from the floor's: only the assessment {sorted(mine - floor)}, "
            f"only the floor {sorted(floor - mine)}")


def report(sizes: list[SizeFigures], time_target: float) -> list[str]:
    """The side-by-side table and the targets, as lines."""
    def row(name: str, cell: Callable[[SizeFigures], str]) -> str:
        return f"{name:<40}" + "".join(f"{cell(size):>22}" for size in sizes)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}×" if b else "—"

    def spread(runs: list[dict[str, Any]]) -> str:
        walls = [r["wall_s"] for r in runs]
        return f"{statistics.median(walls):.2f} ({min(walls):.2f}–{max(walls):.2f})" if walls else "—"

    lines = [row("size (nodes x pods)", lambda s: s.label),
             row("assessment, median (min–max) s", lambda s: spread(s.rounds)),
             row("floor, median (min–max) s", lambda s: spread(s.floor)),
             row("  assessment ÷ floor", lambda s: ratio(s.median(s.rounds, 'wall_s'), s.median(s.floor, 'wall_s')))]
    if any(s.before for s in sizes):
        lines += [row("before (--compare-with), median s", lambda s: spread(s.before)),
                  row("  assessment ÷ before", lambda s: ratio(s.median(s.rounds, 'wall_s'), s.median(s.before, 'wall_s'))),
                  row("  before: requests / peak RSS MB", lambda s: f"{s.before[-1]['requests']} / "
                      f"{max(r['peak_rss_mb'] for r in s.before):.0f}" if s.before else "—")]
    lines += [row("requests: assessment / floor", lambda s: f"{s.rounds[-1]['requests']} / {s.floor[-1]['requests']}"),
              row("MB received: assessment / floor",
                  lambda s: f"{s.rounds[-1]['bytes'] / 1e6:.1f} / {s.floor[-1]['bytes'] / 1e6:.1f}"),
              row("peak RSS MB: assessment / floor",
                  lambda s: f"{max(r['peak_rss_mb'] for r in s.rounds):.0f} / {max(r['peak_rss_mb'] for r in s.floor):.0f}"),
              row("  RSS after imports, before the run", lambda s: f"{s.median(s.rounds, 'rss_after_import_mb'):.0f}")]
    if any(s.kubectl for s in sizes):
        lines.append(row("kubectl, 20 commands, median s (÷)", lambda s: f"{statistics.median(s.kubectl):.2f} "
                         f"({ratio(s.median(s.rounds, 'wall_s'), statistics.median(s.kubectl))})" if s.kubectl else "—"))
    if any(s.popeye for s in sizes):
        lines.append(row(f"popeye {POPEYE_VERSION}, median s", lambda s: f"{statistics.median(s.popeye):.1f}" if s.popeye else "—"))
    lines += [row("load average (1 min) during", lambda s: f"{min(s.load):.1f}–{max(s.load):.1f}"),
              row("nodes Ready / total", lambda s: f"{s.state.get('ready')}/{s.state.get('nodes')}"),
              row("node Lease age p50 / max s", lambda s: f"{s.state.get('lease_age_p50_s') or 0:.0f} / "
                  f"{s.state.get('lease_age_max_s') or 0:.0f}"),
              row("waited for the test bed to settle, s", lambda s: f"{s.state.get('settle_s', 0):.0f}"),
              row("scale-up s (nodes Ready / pods Running)", lambda s: f"{s.scale_up.get('nodes_ready_s', 0):.0f} / "
                  f"{s.scale_up.get('pods_running_s', 0):.0f}" if s.scale_up else "—")]
    lines.append("")
    for size in sizes:
        last = size.rounds[-1]
        slowest = sorted(last["checks"].items(), key=lambda kv: -kv[1][1])[:4]
        lines.append(f"{size.label}: verdict {last['headline']!r}; slowest checks "
                     + ", ".join(f"{name} {d:.2f} s" for name, (_, d, _s) in slowest))
    largest, smallest = sizes[-1], sizes[0]
    wall = largest.median(largest.rounds, "wall_s")
    floor_ratio = wall / largest.median(largest.floor, "wall_s")
    peak = max(r["peak_rss_mb"] for r in largest.rounds)
    small_peak = max(r["peak_rss_mb"] for r in smallest.rounds)
    lines += ["", f"targets at {largest.label}:",
              f"  assessment ÷ floor {floor_ratio:.2f}× (≤ {FLOOR_RATIO_TARGET}×): {'ok' if floor_ratio <= FLOOR_RATIO_TARGET else 'MISSED'}",
              f"  assessment {wall:.2f} s (≤ {time_target} s): {'ok' if wall <= time_target else 'MISSED'}",
              f"  peak RSS {peak:.0f} MB (< {RSS_TARGET_MB:.0f} MB): {'ok' if peak < RSS_TARGET_MB else 'MISSED'}"]
    if len(sizes) > 1:
        growth = peak / small_peak - 1
        lines.append(f"  RSS growth from {smallest.label}: {growth * 100:+.0f}% (≤ {RSS_GROWTH_TARGET * 100:.0f}%): "
                     f"{'ok' if growth <= RSS_GROWTH_TARGET else 'MISSED'}")
    return lines


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        nodes, _, pods = part.strip().lower().partition("x")
        sizes.append((int(nodes), int(pods or 0)))
    return sorted(sizes)


def _export(rev: str) -> Path:
    """A copy of this repository at ``rev`` (``git archive``) to measure its assessment beside this one."""
    target = Path(tempfile.mkdtemp(prefix="bench-before-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000x10000", help="comma-separated NODESxPODS, measured in growing order")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kubeconfig", help="measure this cluster as it is instead of starting one")
    parser.add_argument("--etcd", default="", help="etcd client URL for the direct probe (with --kubeconfig)")
    parser.add_argument("--compare-with", metavar="REV", help="also measure the assessment of this git revision")
    parser.add_argument("--no-popeye", action="store_true", help="leave popeye out of the comparison")
    parser.add_argument("--no-kubectl", action="store_true", help="leave kubectl out of the comparison")
    parser.add_argument("--time-target", type=float, default=TIME_TARGET_S, help="seconds, at the largest size")
    parser.add_argument("--node-lease-seconds", type=int, default=120,
                        help="kwok's node Lease duration (renewed every quarter of it); 40 is a kubelet's")
    parser.add_argument("--child-assess", nargs=2, metavar=("KUBECONFIG", "ETCD"), help=argparse.SUPPRESS)
    parser.add_argument("--child-floor", metavar="KUBECONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_assess:
        child_assess(*args.child_assess)
        return 0
    if args.child_floor:
        child_floor(args.child_floor)
        return 0

    from sandbox.baseline import install_baseline
    from sandbox.binaries import ensure_binaries
    from sandbox.cluster import LocalCluster
    from sandbox.scenarios import Scale

    def say(message: str) -> None:
        print(message, flush=True)

    binaries = ensure_binaries(lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    kubectl = None if args.no_kubectl else binaries / "kubectl"
    popeye = None if args.no_popeye else ensure_popeye(lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    before = _export(args.compare_with) if args.compare_with else None
    sizes: list[SizeFigures] = []
    if args.kubeconfig:
        figures = SizeFigures("as found")
        measure(figures, args.kubeconfig, args.etcd, kubectl, args.rounds, popeye, before, say)
        sizes.append(figures)
    else:
        started = time.monotonic()
        cluster = LocalCluster(binaries=binaries, node_lease_seconds=args.node_lease_seconds)
        with cluster.start(nodes=3), cluster.api_client() as api:
            install_baseline(api)
            say(f"cluster with baseline ready in {time.monotonic() - started:.1f} s (node Leases {args.node_lease_seconds} s, "
                f"renewed every {cluster.node_renew_interval_s:.0f} s)")
            assert cluster.ports is not None
            etcd = f"http://127.0.0.1:{cluster.ports.etcd_client}"
            have_nodes = have_pods = 0
            for index, (nodes, pods) in enumerate(_parse_sizes(args.sizes)):
                say(f"scaling to {nodes} nodes / {pods} pods (load {os.getloadavg()[0]:.1f})…")
                handle = Scale(nodes=nodes - have_nodes, pods=pods - have_pods, namespace=f"scale-{index}",
                               node_prefix=f"scale{index}-node", timeout=1800).apply(api)
                have_nodes, have_pods = nodes, pods
                figures = SizeFigures(f"{nodes}x{pods}", scale_up={k: v for k, v in handle.details.items()
                                                                   if isinstance(v, (int, float))})
                say("  " + ", ".join(f"{key} {value:.1f} s" for key, value in figures.scale_up.items()))
                measure(figures, str(cluster.kubeconfig), etcd, kubectl, args.rounds, popeye, before, say)
                sizes.append(figures)
    say("")
    for line in report(sizes, args.time_target):
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
