"""Benchmark: warm start of the local control plane to a Ready cluster with 3 kwok nodes.

"Warm" means the binaries are already built (the first call of :func:`sandbox.binaries.ensure_binaries`
builds them and is timed separately). Each round starts a fresh :class:`sandbox.cluster.LocalCluster`
(new PKI, new etcd) and stops at 3 Ready nodes; ``--baseline`` also times CoreDNS + aws-node becoming
ready, ``--scale NODES PODS`` times the scale scenario on the last round.

Run: ``python -m bench.bench_cluster_start [--rounds 3] [--baseline] [--scale 1000 10000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from sandbox.baseline import install_baseline
from sandbox.binaries import ensure_binaries
from sandbox.cluster import LocalCluster
from sandbox.scenarios import Scale


def time_start(nodes: int, baseline: bool) -> dict[str, float]:
    """One fresh cluster: seconds to Ready nodes (and to a healthy baseline), then stopped."""
    figures: dict[str, float] = {}
    started = time.monotonic()
    with LocalCluster().start(nodes=nodes) as cluster:
        figures["ready_s"] = time.monotonic() - started
        if baseline:
            with cluster.api_client() as api:
                install_baseline(api)
            figures["baseline_s"] = time.monotonic() - started
        stopping = time.monotonic()
    figures["stop_s"] = time.monotonic() - stopping
    return figures


def time_scale(nodes: int, pods: int) -> dict[str, float]:
    """The scale scenario on a fresh 3-node cluster: creation and Running times, then undo time."""
    with LocalCluster().start(nodes=3) as cluster, cluster.api_client() as api:
        handle = Scale(nodes=nodes, pods=pods).apply(api)
        figures = {key: float(value) for key, value in handle.details.items()}
        undo_started = time.monotonic()
        handle.undo()
        figures["undo_s"] = time.monotonic() - undo_started
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="also time CoreDNS + aws-node readiness")
    parser.add_argument("--scale", nargs=2, type=int, metavar=("NODES", "PODS"), help="also run the scale scenario")
    args = parser.parse_args(argv)

    started = time.monotonic()
    ensure_binaries(lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    print(f"binaries ready (build or stamp check): {time.monotonic() - started:.2f} s")

    rounds = [time_start(args.nodes, args.baseline) for _ in range(args.rounds)]
    for index, figures in enumerate(rounds, start=1):
        print(f"round {index}: " + ", ".join(f"{key}={value:.2f}" for key, value in figures.items()))
    ready = [figures["ready_s"] for figures in rounds]
    print(
        f"warm start to {args.nodes} Ready nodes: median {statistics.median(ready):.2f} s, "
        f"min {min(ready):.2f} s, max {max(ready):.2f} s over {len(ready)} rounds"
    )
    if args.scale:
        nodes, pods = args.scale
        figures = time_scale(nodes, pods)
        print(f"scale {nodes} nodes / {pods} pods: " + ", ".join(f"{key}={value:.1f}" for key, value in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
