"""Benchmark: the fleet assessment (``/k8s assess --cluster all``) over 1, 2 and 3 clusters, and an agent's memory.

Starts three test-bed control planes (3 kwok nodes and the healthy baseline each), one real Redis and one
agent process per cluster (``k8s-incident-bot agent --cluster cN``, the production command), then times
:func:`service.fleet.request_fleet_assessment` from the request to the moment the last cluster's row
completed the verdict matrix (the matrix is then in the outbox; sending it is the bot's drainers' job and
is not timed). Each size runs ``--rounds`` times; the median is printed side by side with its ratio to one
cluster (target: 3 clusters ≤ 1.3 × one). The agents' RSS (main process, and its high-water mark) is read
from ``/proc`` after the runs.

Run: ``python -m bench.bench_fleet [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from incident.settings import Settings
from sandbox.baseline import install_baseline
from sandbox.binaries import ensure_binaries
from sandbox.cluster import LocalCluster
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from service import fleet
from service.context import Context

NAMES = ("c1", "c2", "c3")


def _env(redis_url: str, kubeconfig: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_", "KUBE", "CLUSTERS_"))}
    env.update(REDIS_URL=redis_url, KUBECONFIG=str(kubeconfig), AGENT_HEARTBEAT_SECONDS="30", LOG_LEVEL="WARNING",
               METRICS_PORT=str(free_port()))
    return env


def _rss_kb(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _registry(directory: Path, count: int) -> Path:
    path = directory / f"clusters-{count}.yaml"
    path.write_text("clusters:\n" + "".join(f"  - name: {name}\n    mode: agent\n" for name in NAMES[:count]))
    return path


def time_fleet(redis_url: str, clusters_file: Path, timeout: float = 300.0) -> tuple[float, float]:
    """Seconds from the request to the completed matrix, and the longest cluster's own assessment time."""
    ctx = Context.from_settings(Settings(_env_file=None, redis_url=redis_url, clusters_file=clusters_file,  # type: ignore[call-arg]
                                         agent_heartbeat_seconds=30))
    before = set(ctx.redis.scan_iter(ctx.keys.fleet_run("*")))
    started = time.monotonic()
    fleet.request_fleet_assessment(ctx, "C_BENCH", None, "U_BENCH")
    (key,) = set(ctx.redis.scan_iter(ctx.keys.fleet_run("*"))) - before
    while not ctx.redis.hget(key, "posted"):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the fleet run did not complete within {timeout:.0f} s")
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    rows = [json.loads(v) for k, v in ctx.redis.hgetall(key).items() if k.decode().startswith("row:")]
    return elapsed, max(float(row.get("duration_s") or 0.0) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    binaries = ensure_binaries(lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    redis = RedisServer(appendonly=True).start()
    planes: list[LocalCluster] = []
    agents: list[subprocess.Popen[bytes]] = []
    try:
        for name in NAMES:
            plane = LocalCluster(workdir / name, binaries=binaries, node_prefix=f"{name}-node").start(nodes=3)
            planes.append(plane)
            with plane.api_client() as api:
                install_baseline(api)
        for name, plane in zip(NAMES, planes):
            log = open(workdir / f"agent-{name}.log", "wb")  # noqa: SIM115 - closed with the process
            agents.append(subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", "agent", "--cluster", name],
                                           env=_env(redis.url, plane.kubeconfig), stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))
        probe = Context.from_settings(Settings(_env_file=None, redis_url=redis.url,  # type: ignore[call-arg]
                                               clusters_file=_registry(workdir, 3)))
        deadline = time.monotonic() + 60
        while any(fleet.agent_seen(probe, name) is None for name in NAMES):
            if time.monotonic() > deadline:
                raise RuntimeError("the agents did not heartbeat within 60 s")
            time.sleep(0.1)
        time_fleet(redis.url, _registry(workdir, 3))  # warm-up: imports and connections of every work horse
        medians: dict[int, float] = {}
        checks: dict[int, float] = {}
        for count in (1, 2, 3):
            runs = [time_fleet(redis.url, _registry(workdir, count)) for _ in range(args.rounds)]
            medians[count] = statistics.median(wall for wall, _ in runs)
            checks[count] = statistics.median(own for _, own in runs)
            print(f"{count} cluster(s): median {medians[count]:.2f} s  (rounds: "
                  f"{', '.join(f'{wall:.2f}' for wall, _ in runs)})", flush=True)
        print()
        print("| clusters | fleet assessment (median) | × one cluster | slowest cluster's own checks (median) |")
        print("| --- | --- | --- | --- |")
        for count, median in medians.items():
            print(f"| {count} | {median:.2f} s | {median / medians[1]:.2f} | {checks[count]:.2f} s |")
        print(f"(this machine has {os.cpu_count()} cores for all {len(NAMES)} control planes and agents: when a "
              "cluster's own checks slow down with the count, the clusters are competing for the same CPU)")
        rss = [_rss_kb(agent.pid) for agent in agents]
        print(f"\nagent RSS (main process): {', '.join(f'{r / 1024:.0f} MB' for r, _ in rss)}; "
              f"high-water mark {max(h for _, h in rss) / 1024:.0f} MB; load average {os.getloadavg()[0]:.1f}")
        ratio = medians[3] / medians[1]
        print(f"3 clusters / 1 cluster = {ratio:.2f} (target ≤ 1.3): {'met' if ratio <= 1.3 else 'NOT met'}")
        return 0
    finally:
        for agent in agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGTERM)
        for agent in agents:
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
        for plane in planes:
            plane.stop()
        redis.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
