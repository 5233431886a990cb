"""Benchmark (not a test): the assessment on a big sandbox cluster, side by side with what it replaces.

Starts a fresh local control plane with the healthy baseline and the scale scenario (default 1,000 kwok
nodes and 10,000 pods), then measures in the same run, ``--rounds`` times each, interleaved:

- **assessment**: the production assessment in a fresh Python process (like a worker's work horse):
  wall time, requests made, peak RSS (target < 250 MB);
- **raw LISTs**: exactly the requests the assessment made (recorded on a first pass), replayed with the
  same pagination and only JSON decoding — concurrently per check (the I/O floor of the assessment; target
  assessment ≤ 1.5× this) and one after another;
- **kubectl**: the runbook's equivalent ``kubectl`` commands run in sequence (target: the assessment is faster);
- **popeye** (``bench/popeye.py``, built once from the Go module proxy; ``--no-popeye`` skips it): one
  whole-cluster scan with a JSON report. It lints far more than the runbook asks (every resource kind,
  every namespace), so it is a reference point for "a generic scanner", not a like-for-like race.
  k8sgpt is not compared: the module proxy does not serve it.

Figures and ratios are printed side by side. ``--kubeconfig`` measures an existing cluster instead.

Run: ``python -m bench.bench_assessment [--nodes 1000] [--pods 10000] [--rounds 3] [--no-popeye]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.popeye import POPEYE_VERSION, ensure_popeye, run_popeye

RSS_TARGET_MB = 250.0
RAW_RATIO_TARGET = 1.5


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_assess(kubeconfig: str, etcd: str) -> None:
    """Runs in the child process: one full assessment, figures as one JSON line on stdout."""
    from incident.settings import Settings
    from kube.assessor import assess
    from kube.client import KubeApi

    from kube.checks import default_checks

    default_checks()  # a worker has the check modules loaded before the job starts
    settings = Settings(kubeconfig=Path(kubeconfig), etcd_endpoints=[etcd] if etcd else [])
    kube = KubeApi.from_settings(settings)
    after_import = _rss_mb()
    recorder: list[tuple[str, str, dict[str, Any]]] = []
    kube.recorder = recorder
    started = time.monotonic()
    assessment = assess(settings, kube=kube)
    wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "wall_s": wall, "peak_rss_mb": peak, "rss_after_import_mb": after_import, "requests": len(recorder),
        "headline": assessment.verdict.headline,
        "checks": {c.name: [c.status, round(c.duration_s, 3)] for c in assessment.checks},
    }))


def run_assessment_process(kubeconfig: str, etcd: str) -> dict[str, Any]:
    output = subprocess.run([sys.executable, "-m", "bench.bench_assessment", "--child-assess", kubeconfig, etcd],
                            capture_output=True, text=True, check=True, timeout=300)
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def record_requests(kubeconfig: str, etcd: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """One assessment in-process with a recorder: the requests of each check, first pages only."""
    from incident.settings import Settings
    from kube.assessor import assess
    from kube.client import KubeApi

    settings = Settings(kubeconfig=Path(kubeconfig), etcd_endpoints=[etcd] if etcd else [])
    kube = KubeApi.from_settings(settings)
    recorder: list[tuple[str, str, dict[str, Any]]] = []
    kube.recorder = recorder
    assess(settings, kube=kube)
    kube.close()
    per_check: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for label, path, params in recorder:
        if not params.get("continue"):
            per_check[label].append((path, params))
    return dict(per_check)


def replay(kube: Any, requests: list[tuple[str, dict[str, Any]]]) -> int:
    """Make the same requests: LISTs page by page (JSON decoded for the continue token), GETs read whole."""
    pages = 0
    for path, params in requests:
        if "limit" in params:
            for _ in kube.list_pages(path, label_selector=params.get("labelSelector"),
                                     field_selector=params.get("fieldSelector"), limit=params["limit"]):
                pages += 1
        else:
            kube.get(path, params, accept_status=tuple(range(200, 600)))
            pages += 1
    return pages


def raw_lists(kubeconfig: str, per_check: dict[str, list[tuple[str, dict[str, Any]]]], concurrent: bool) -> float:
    from incident.settings import Settings
    from kube.client import KubeApi

    kube = KubeApi.from_settings(Settings(kubeconfig=Path(kubeconfig)))
    started = time.monotonic()
    if concurrent:
        threads = [threading.Thread(target=replay, args=(kube, requests)) for requests in per_check.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for requests in per_check.values():
            replay(kube, requests)
    wall = time.monotonic() - started
    kube.close()
    return wall


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


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure(kubeconfig: str, etcd: str, kubectl: Path | None, rounds: int, popeye: Path | None = None) -> None:
    print("recording the assessment's requests (warm-up pass)…", flush=True)
    per_check = record_requests(kubeconfig, etcd)
    total_requests = sum(len(r) for r in per_check.values())
    print(f"  {total_requests} request(s) (first pages) across {len(per_check)} check(s)")
    figures: dict[str, list[float]] = defaultdict(list)
    last: dict[str, Any] = {}
    for round_ in range(1, rounds + 1):
        last = run_assessment_process(kubeconfig, etcd)
        figures["assessment"].append(last["wall_s"])
        figures["peak_rss"].append(last["peak_rss_mb"])
        figures["rss_after_import"].append(last["rss_after_import_mb"])
        figures["raw_concurrent"].append(raw_lists(kubeconfig, per_check, concurrent=True))
        figures["raw_sequential"].append(raw_lists(kubeconfig, per_check, concurrent=False))
        if kubectl is not None:
            figures["kubectl"].append(run_kubectl(kubectl, kubeconfig))
        if popeye is not None:
            popeye_s, report_bytes = run_popeye(popeye, kubeconfig)
            figures["popeye"].append(popeye_s)
            last["popeye_report_kb"] = report_bytes / 1024
        print(f"  round {round_}: assessment {figures['assessment'][-1]:.2f} s, raw concurrent "
              f"{figures['raw_concurrent'][-1]:.2f} s, raw sequential {figures['raw_sequential'][-1]:.2f} s"
              + (f", kubectl {figures['kubectl'][-1]:.2f} s" if kubectl else "")
              + (f", popeye {figures['popeye'][-1]:.2f} s" if popeye else "")
              + f", peak RSS {figures['peak_rss'][-1]:.0f} MB", flush=True)

    assessment = _median(figures["assessment"])
    raw_c, raw_s = _median(figures["raw_concurrent"]), _median(figures["raw_sequential"])
    peak = max(figures["peak_rss"])
    print()
    print(f"verdict of the last run: {last.get('headline')}")
    print("slowest checks: " + ", ".join(f"{name} {d:.2f} s" for name, (_, d) in
                                        sorted(last.get("checks", {}).items(), key=lambda kv: -kv[1][1])[:4]))
    print()
    print(f"{'measure (median of ' + str(rounds) + ')':<44}{'seconds':>10}{'assessment ÷ this':>20}{'target':>16}")
    rows = [("assessment (fresh worker process)", assessment, None, ""),
            ("raw LISTs, concurrent per check", raw_c, assessment / raw_c, f"≤ {RAW_RATIO_TARGET}×"),
            ("raw LISTs, sequential", raw_s, assessment / raw_s, "")]
    if figures["kubectl"]:
        kubectl_s = _median(figures["kubectl"])
        rows.append((f"kubectl, {len(kubectl_commands())} commands in sequence", kubectl_s, assessment / kubectl_s, "< 1×"))
    if figures["popeye"]:
        popeye_s = _median(figures["popeye"])
        rows.append((f"popeye {POPEYE_VERSION}, whole-cluster scan", popeye_s, assessment / popeye_s, ""))
    for name, seconds, ratio, target in rows:
        ratio_text = f"{ratio:.2f}×" if ratio is not None else "—"
        verdict = ""
        if target.startswith("≤"):
            verdict = " ok" if ratio is not None and ratio <= RAW_RATIO_TARGET else " MISSED"
        elif target.startswith("<"):
            verdict = " ok" if ratio is not None and ratio < 1 else " MISSED"
        print(f"{name:<44}{seconds:>10.2f}{ratio_text:>20}{target + verdict:>16}")
    print(f"{'worker peak RSS (max)':<44}{peak:>9.0f}M{'':>20}{f'< {RSS_TARGET_MB:.0f} MB' + (' ok' if peak < RSS_TARGET_MB else ' MISSED'):>16}")
    print(f"{'  of which after imports, before the run':<44}{_median(figures['rss_after_import']):>9.0f}M")
    print(f"{'requests per assessment':<44}{last.get('requests', 0):>10}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kubeconfig", help="measure this cluster instead of starting one (no scale scenario)")
    parser.add_argument("--etcd", default="", help="etcd client URL for the direct probe (with --kubeconfig)")
    parser.add_argument("--no-popeye", action="store_true", help="leave popeye out of the comparison")
    parser.add_argument("--child-assess", nargs=2, metavar=("KUBECONFIG", "ETCD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_assess:
        child_assess(*args.child_assess)
        return 0

    from sandbox.baseline import install_baseline
    from sandbox.binaries import ensure_binaries
    from sandbox.cluster import LocalCluster
    from sandbox.scenarios import Scale

    binaries = ensure_binaries(lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    kubectl = binaries / "kubectl"
    popeye = None if args.no_popeye else ensure_popeye(lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    if args.kubeconfig:
        measure(args.kubeconfig, args.etcd, kubectl, args.rounds, popeye)
        return 0
    started = time.monotonic()
    with LocalCluster(binaries=binaries).start(nodes=3) as cluster, cluster.api_client() as api:
        install_baseline(api)
        print(f"cluster with baseline ready in {time.monotonic() - started:.1f} s; scaling to "
              f"{args.nodes} nodes / {args.pods} pods…", flush=True)
        handle = Scale(nodes=args.nodes, pods=args.pods).apply(api)
        print("  " + ", ".join(f"{key} {value:.1f} s" for key, value in handle.details.items()
                               if isinstance(value, (int, float))), flush=True)
        assert cluster.ports is not None
        measure(str(cluster.kubeconfig), f"http://127.0.0.1:{cluster.ports.etcd_client}", kubectl, args.rounds, popeye)
    return 0


if __name__ == "__main__":
    sys.exit(main())
