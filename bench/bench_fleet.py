"""Benchmark: the fleet assessment (``/k8s assess --cluster all``) over 1, 2 and 3 clusters, and an agent's memory.

Starts three test-bed control planes (3 kwok nodes and the healthy baseline each), one real Redis and one
agent process per cluster (``k8s-incident-bot agent --cluster cN``, the production command, started by
:class:`sandbox.agents.AgentPool`), then times :func:`service.fleet.request_fleet_assessment` from the request
to the moment the last cluster's row completed the verdict matrix (the matrix is then in the outbox; sending
it is the bot's drainers' job and is not timed). Each size runs ``--rounds`` times; the median is printed side
by side with its ratio to one cluster (target: 3 clusters ≤ 1.3 × one).

Where the time goes, per size (medians over the rounds, the slowest cluster of each round):

- **request → last enqueued**: the fan-out (one job per cluster, queued one after another by the request);
- **queued → started**: from the enqueue to the agent's work horse starting the job (dequeue, fork);
- **in the job**: from the start of the job to its end (settings, the Kubernetes client, the checks, the row);
- **its checks**: the assessment's own duration (the checks, in parallel threads);
- **CPU**: the CPU seconds the run cost (the agents' work horses, reaped by their agent, and the control
  planes of the clusters assessed), and that divided by the wall time: how many of the machine's cores the
  run kept busy. Near the core count, the clusters' assessments are waiting for the CPU, not for each other.

The agents' RSS (main process, and its high-water mark) is read from ``/proc`` after the runs.

Run: ``python -m bench.bench_fleet [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rq.job import Job
from rq.registry import FinishedJobRegistry

from incident.settings import Settings
from sandbox.agents import AgentPool, child_pids
from sandbox.baseline import install_baseline
from sandbox.binaries import ensure_binaries
from sandbox.cluster import LocalCluster
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from service import fleet
from service.context import Context

NAMES = ("c1", "c2", "c3")
TICK = os.sysconf("SC_CLK_TCK")


def _env(redis_url: str, kubeconfig: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_", "KUBE", "CLUSTERS_"))}
    env.update(REDIS_URL=redis_url, KUBECONFIG=str(kubeconfig), AGENT_HEARTBEAT_SECONDS="30", LOG_LEVEL="WARNING",
               METRICS_PORT=str(free_port()))
    return env


def _rss_kb(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _cpu_s(pid: int, *, reaped_children: bool = False) -> float:
    """CPU seconds of a process (and of its children it has reaped: an agent's finished work horses)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if reaped_children else 0)
    return ticks / TICK


def _registry(directory: Path, count: int) -> Path:
    path = directory / f"clusters-{count}.yaml"
    path.write_text("clusters:\n" + "".join(f"  - name: {name}\n    mode: agent\n" for name in NAMES[:count]))
    return path


@dataclass(frozen=True)
class Round:
    """One fleet assessment, measured."""

    wall: float
    checks: float
    """The slowest cluster's own assessment (its checks)."""
    fan_out: float
    """The request → the last cluster's job enqueued (the request queues one job per cluster, one after another)."""
    queued: float
    """The slowest cluster's enqueue → start of its job."""
    in_job: float
    """The slowest cluster's start → end of its job."""
    cpu: float
    """CPU seconds of the assessed clusters' agents (their work horses) and control planes."""


class Fleet:
    """The running test bed: Redis, the control planes and one agent each."""

    def __init__(self, redis_url: str, planes: dict[str, LocalCluster], agents: AgentPool) -> None:
        self.redis_url, self.planes, self.agents = redis_url, planes, agents

    def cpu(self, names: tuple[str, ...]) -> float:
        agents = sum(_cpu_s(proc.pid, reaped_children=True) for name in names for proc in self.agents.procs[name])
        return agents + sum(_cpu_s(pid) for name in names for pid in self.planes[name].component_pids().values())

    def time_fleet(self, clusters_file: Path, count: int, timeout: float = 300.0) -> Round:
        """One fleet assessment of the first ``count`` clusters."""
        ctx = Context.from_settings(Settings(_env_file=None, redis_url=self.redis_url, clusters_file=clusters_file,  # type: ignore[call-arg]
                                             agent_heartbeat_seconds=30))
        names = NAMES[:count]
        finished = {name: FinishedJobRegistry(ctx.keys.cluster_queue_name("assess", name), connection=ctx.redis)
                    for name in names}
        done_before = {name: set(registry.get_job_ids()) for name, registry in finished.items()}
        runs_before = set(ctx.redis.scan_iter(ctx.keys.fleet_run("*")))
        agents = [proc.pid for name in names for proc in self.agents.procs[name]]
        children = {pid: set(child_pids(pid)) for pid in agents}  # an agent's scheduler; no work horse yet
        cpu_before = self.cpu(names)
        requested = datetime.now(timezone.utc)
        started = time.monotonic()
        fleet.request_fleet_assessment(ctx, "C_BENCH", None, "U_BENCH")
        (key,) = set(ctx.redis.scan_iter(ctx.keys.fleet_run("*"))) - runs_before
        while not ctx.redis.hget(key, "posted"):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the fleet run did not complete within {timeout:.0f} s")
            time.sleep(0.01)
        wall = time.monotonic() - started
        rows = [json.loads(v) for k, v in ctx.redis.hgetall(key).items() if k.decode().startswith("row:")]
        jobs: list[Job] = []
        deadline = time.monotonic() + 30
        for name, registry in finished.items():  # each job ends just after it added its row
            while not (new := set(registry.get_job_ids()) - done_before[name]):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the job of {name} did not finish")
                time.sleep(0.01)
            jobs.append(Job.fetch(new.pop(), connection=ctx.redis))
        for pid in agents:  # a work horse's CPU counts in its agent's once the agent has reaped it
            while set(child_pids(pid)) - children[pid]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the work horse of agent {pid} did not exit")
                time.sleep(0.01)
        cpu = self.cpu(names) - cpu_before
        return Round(wall, max(float(row.get("duration_s") or 0.0) for row in rows),
                     max(_seconds(requested, job.enqueued_at) for job in jobs),
                     max(_seconds(job.enqueued_at, job.started_at) for job in jobs),
                     max(_seconds(job.started_at, job.ended_at) for job in jobs), cpu)


def _seconds(start: object, end: object) -> float:
    assert isinstance(start, datetime) and isinstance(end, datetime)
    return (end.replace(tzinfo=timezone.utc) - start.replace(tzinfo=timezone.utc)).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    binaries = ensure_binaries(lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    redis = RedisServer(appendonly=True).start()
    planes: dict[str, LocalCluster] = {}
    agents = AgentPool(workdir)
    try:
        for name in NAMES:
            planes[name] = LocalCluster(workdir / name, binaries=binaries, node_prefix=f"{name}-node").start(nodes=3)
            with planes[name].api_client() as api:
                install_baseline(api)
        for name, plane in planes.items():
            agents.start(name, _env(redis.url, plane.kubeconfig))
        probe = Context.from_settings(Settings(_env_file=None, redis_url=redis.url,  # type: ignore[call-arg]
                                               clusters_file=_registry(workdir, 3)))
        deadline = time.monotonic() + 60
        while any(fleet.agent_seen(probe, name) is None for name in NAMES):
            if time.monotonic() > deadline:
                raise RuntimeError("the agents did not heartbeat within 60 s")
            time.sleep(0.1)
        bed = Fleet(redis.url, planes, agents)
        bed.time_fleet(_registry(workdir, 3), 3)  # warm-up: imports and connections of every work horse
        results: dict[int, list[Round]] = {}
        for count in (1, 2, 3):
            results[count] = [bed.time_fleet(_registry(workdir, count), count) for _ in range(args.rounds)]
            print(f"{count} cluster(s): median {statistics.median(r.wall for r in results[count]):.2f} s  (rounds: "
                  f"{', '.join(f'{r.wall:.2f}' for r in results[count])})", flush=True)
        medians = {count: statistics.median(r.wall for r in runs) for count, runs in results.items()}
        print()
        print("| clusters | fleet assessment (median) | × one cluster | request → last enqueued | queued → started "
              "| in the job | its checks | CPU of the run | cores busy |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for count, runs in results.items():
            cpu = statistics.median(r.cpu for r in runs)
            print(f"| {count} | {medians[count]:.2f} s | {medians[count] / medians[1]:.2f} | "
                  f"{statistics.median(r.fan_out for r in runs):.3f} s | {statistics.median(r.queued for r in runs):.3f} s | {statistics.median(r.in_job for r in runs):.2f} s | "
                  f"{statistics.median(r.checks for r in runs):.2f} s | {cpu:.2f} s | "
                  f"{statistics.median(r.cpu / r.wall for r in runs):.2f} of {os.cpu_count()} |")
        print(f"(queued → started, in the job, its checks: the slowest cluster of each round. CPU: the assessed "
              f"clusters' agents and control planes; when it stays near {os.cpu_count()} cores while the checks "
              "slow down with the count, the clusters are competing for the same CPU, not waiting for each other)")
        rss = [_rss_kb(proc.pid) for group in agents.procs.values() for proc in group]
        print(f"\nagent RSS (main process): {', '.join(f'{r / 1024:.0f} MB' for r, _ in rss)}; "
              f"high-water mark {max(h for _, h in rss) / 1024:.0f} MB; load average {os.getloadavg()[0]:.1f}")
        ratio = medians[3] / medians[1]
        print(f"3 clusters / 1 cluster = {ratio:.2f} (target ≤ 1.3): {'met' if ratio <= 1.3 else 'NOT met'}")
        return 0
    finally:
        agents.stop_all()
        for plane in planes.values():
            plane.stop()
        redis.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
