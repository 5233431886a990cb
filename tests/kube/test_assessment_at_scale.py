"""The assessment on a scaled, healthy test bed: a healthy verdict, and memory that does not follow cluster size.

One cluster of its own (the session cluster stays small) grows from 1,000 to 3,000 kwok nodes — each
node brings its ``aws-node`` DaemonSet pod, its Lease and its Node object, the three LISTs that grow
with the cluster — plus a pod per node in a workload namespace. At each size, once the cluster has
settled (every node Ready, every DaemonSet pod ready, which is what "healthy" means here), the
production assessment runs in fresh processes, as in a worker, through the benchmark's own child
(``bench.bench_assessment --child-assess``).

Peak RSS is compared as the lowest of the runs at each size: how many pages happen to be in flight at
once varies from run to run by a few MB, growth with the cluster would show in every run. The
assertion bounds growth from 1,000 to 3,000 nodes by :data:`RSS_GROWTH_LIMIT_MB`; the previous
assessment grew by ~45 MB per 1,000 nodes (160 MB at 1,000, 334 MB at 5,000). Times are printed, not
asserted (``bench/bench_assessment.py`` compares them with their floor).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from kubernetes import client as k8s

from kube.checks import age_s
from kube.checks.nodes import NODE_LEASES
from kube.client import KubeApi
from sandbox.baseline import install_baseline
from sandbox.binaries import ensure_binaries
from sandbox.cluster import LocalCluster
from sandbox.objects import ScenarioError, wait_for
from sandbox.scenarios import Scale

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]

SIZES = (1000, 3000)
RUNS = 2
RSS_GROWTH_LIMIT_MB = 30.0
FRESH_LEASE_S = 45.0
"""Settled means every node Lease renewed within this (kwok renews every 30 s; the assessment calls 60 s stale)."""
SCALE_PATTERNS = ("node-failure", "dns-cascade", "pod-ip-exhaustion", "single-workload")
"""The patterns a too-slow test bed (stale Leases, unready DaemonSet pods) or a misread page would produce."""


@pytest.fixture(scope="module")
def scaled_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    binaries = ensure_binaries(lambda message: print(f"[scale] {message}", file=sys.stderr, flush=True))
    # 120 s Leases: kwok renews each every 30 s, half the assessment's 60 s stale threshold (see LocalCluster).
    cluster = LocalCluster(tmp_path_factory.mktemp("scale-cluster"), binaries=binaries, node_lease_seconds=120)
    cluster.start(nodes=3)
    try:
        with cluster.api_client() as api:
            install_baseline(api)
        yield cluster
    finally:
        cluster.stop()


def unsettled(api: k8s.ApiClient, nodes: int) -> list[str]:
    """What still keeps the cluster from healthy: a Lease not renewed lately, nodes not Ready, DaemonSet
    pods or Deployments not ready.

    Counts come from the controllers' status fields and raw JSON pages (thousands of pods as model
    objects every second would load the machine the test measures)."""
    found = []
    leases = KubeApi(api).stream(NODE_LEASES)
    ages = [age for lease in leases.items()
            if (age := age_s((lease.get("spec") or {}).get("renewTime"), leases.snapshot_time or datetime.now(timezone.utc))) is not None]
    if len(ages) < nodes or max(ages) > FRESH_LEASE_S:
        found.append(f"{len(ages)} node Leases, the oldest renewed {max(ages, default=0):.0f} s ago")
    ready = LocalCluster.ready_node_count(api)
    if ready != nodes:
        found.append(f"{ready}/{nodes} nodes Ready")
    apps = k8s.AppsV1Api(api)
    for kind, items in (("daemonset", apps.list_daemon_set_for_all_namespaces(_preload_content=False)),
                        ("deployment", apps.list_deployment_for_all_namespaces(_preload_content=False))):
        for item in json.loads(items.data)["items"]:
            status = item.get("status") or {}
            want = status.get("desiredNumberScheduled", (item.get("spec") or {}).get("replicas", 1))
            have = status.get("numberReady", status.get("readyReplicas", 0)) or 0
            if have != want or (kind == "daemonset" and want != nodes):
                found.append(f"{kind} {item['metadata']['name']} {have}/{want}")
    return found


def assess_in_a_fresh_process(cluster: LocalCluster) -> dict[str, Any]:
    assert cluster.ports is not None
    output = subprocess.run(
        [sys.executable, "-m", "bench.bench_assessment", "--child-assess", str(cluster.kubeconfig),
         f"http://127.0.0.1:{cluster.ports.etcd_client}"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=300)
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def test_healthy_verdict_and_flat_memory_from_1000_to_3000_nodes(scaled_cluster: LocalCluster) -> None:
    peaks: dict[int, float] = {}
    have = 0
    with scaled_cluster.api_client() as api:
        for index, nodes in enumerate(SIZES):
            Scale(nodes=nodes - have, pods=nodes - have, namespace=f"scale-{index}", node_prefix=f"scale{index}-node",
                  timeout=900).apply(api)
            have = nodes
            total = nodes + 3
            try:
                wait_for(f"{total} nodes healthy", lambda: not unsettled(api, total), timeout=600, interval=2.0)
            except ScenarioError as error:
                raise AssertionError(f"the test bed did not settle at {total} nodes: {unsettled(api, total)}") from error
            runs = [assess_in_a_fresh_process(scaled_cluster) for _ in range(RUNS)]
            for run in runs:
                print(f"{nodes} nodes: {run['wall_s']:.2f} s, {run['requests']} requests, {run['bytes'] / 1e6:.1f} MB, "
                      f"peak RSS {run['peak_rss_mb']:.0f} MB; {run['headline']}")
                checks = run["checks"]
                assert checks["nodes"][0] == "ok", checks["nodes"]
                assert f"{nodes + 3}/{nodes + 3} Ready" in checks["nodes"][2], checks["nodes"]
                for name in ("kube_system", "dns", "pod_network", "pending_pods"):
                    assert checks[name][0] == "ok", (name, checks[name])
                assert not any(status in ("timeout", "error") for status, _, _ in checks.values()), checks
                assert not any(key in run["patterns"] for key in SCALE_PATTERNS), run["headline"]
            peaks[nodes] = min(run["peak_rss_mb"] for run in runs)
    growth = peaks[SIZES[-1]] - peaks[SIZES[0]]
    print(f"peak RSS {peaks}; growth {growth:+.0f} MB")
    assert growth < RSS_GROWTH_LIMIT_MB, peaks
