"""Benchmark: the per-cluster action lock and FIFO — hand-over overhead and queue throughput.

Three figures against a real redis-server (AOF on, as in production):

1. the lock primitive: acquire (INCR fence + SET NX PX, one script) + renew + release latency;
2. in one drainer: the hand-over between two consecutive no-op actions (fenced finish + audit entry
   + pop, read the head, fenced start, watchdog marker, position refresh enqueue) as p50/p99, and the
   throughput of a queue of 100 confirmed no-op actions;
3. across real RQ worker processes (``python -m k8s_incident_bot worker``): 100 confirmed no-op
   actions, each confirm enqueuing a drain job as the bot does; the gap between one action's end and
   the next one's start (from the audit timestamps) p50/p99, overlaps (must be 0) and throughput.

Run: ``python -m bench.bench_action_lock [--actions 100] [--workers 4]``. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from persistence.action_lock import ActionLock
from incident.actions import ActionStatus, Outcome
from persistence.action_store import ActionStore
from incident.model import Incident
from incident.settings import Settings
from persistence.store import IncidentStore
from persistence.timeline import Timeline
from sandbox.redis_server import RedisServer
from service.actions import drain, enqueue_drain
from service.runtime import ActionRuntime
from service.context import Context

REPO = Path(__file__).resolve().parent.parent
RUNTIME = "bench.bench_action_lock:noop_runtime"
CLUSTER = "bench"


class NoopExecutor:
    def prepare(self, request: Any) -> str:
        return "no-op"

    def execute(self, request: Any, guard: Any, progress: Any) -> Outcome:
        guard()  # one lock check, as a real single-call action does
        return Outcome(True, "no-op")


class NullNotifier:
    def post_message(self, channel: str, text: str, blocks: Any = None, thread_ts: str | None = None) -> str:
        return "1.0"

    def update_message(self, channel: str, ts: str, text: str, blocks: Any = None) -> None:
        return None

    def post_ephemeral(self, channel: str, user: str, text: str, blocks: Any = None) -> None:
        return None


def noop_runtime(settings: Settings) -> ActionRuntime:
    return ActionRuntime(executor=NoopExecutor(), notifier=NullNotifier())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


def confirmed_actions(ctx: Context, incident: Incident, count: int, *, enqueue: bool) -> list[str]:
    store = ActionStore(ctx.redis, ctx.keys)
    ids = []
    for index in range(count):
        action = store.new(cluster=CLUSTER, kind="cordon", target=f"node-{index}", requested_by="U_BENCH",
                           channel_id=incident.channel_id, incident_id=incident.id)
        store.prepared(action.id, dry_run="no-op", guard="", ttl_seconds=600)
        store.confirm(action.id, "U_OTHER")
        if enqueue:
            enqueue_drain(ctx.settings, CLUSTER, RUNTIME)
        ids.append(action.id)
    return ids


def gaps(client: redis.Redis, incident: Incident) -> tuple[list[float], int, float]:
    audit = sorted((e.data for e in Timeline(client, incident.id).entries({"action"})), key=lambda d: d["started_at"])
    between = [b["started_at"] - a["finished_at"] for a, b in zip(audit, audit[1:])]
    overlaps = sum(1 for gap in between if gap < 0)
    span = audit[-1]["finished_at"] - audit[0]["started_at"] if audit else 0.0
    return between, overlaps, span


def lock_primitive(client: redis.Redis, rounds: int) -> None:
    acquire, renew, release = [], [], []
    for _ in range(rounds):
        lock = ActionLock(client, "primitive", lease_seconds=30)
        t0 = time.perf_counter()
        assert lock.acquire() is not None
        t1 = time.perf_counter()
        assert lock.renew()
        t2 = time.perf_counter()
        assert lock.release()
        t3 = time.perf_counter()
        acquire.append(t1 - t0)
        renew.append(t2 - t1)
        release.append(t3 - t2)
    print(f"lock primitive ({rounds} rounds): acquire p50 {ms(percentile(acquire, .5))} p99 {ms(percentile(acquire, .99))}"
          f" | renew p50 {ms(percentile(renew, .5))} | release p50 {ms(percentile(release, .5))}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    server = RedisServer(appendonly=True).start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-action-lock-"))
    kubeconfig = workdir / "kubeconfig.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, kubeconfig=kubeconfig, action_lease_seconds=30, cluster_name=CLUSTER)
        ctx = Context(settings, client, action_runtime=noop_runtime(settings), runtime_path=RUNTIME)
        incidents = IncidentStore(client)

        def fresh_incident(name: str) -> Incident:
            return incidents.create(Incident(id=name, title="bench", severity="sev3", channel_id="C_BENCH",
                                             channel_name="inc-bench", opened_by="U_BENCH",
                                             opened_at=incidents.clock.now()))

        lock_primitive(client, 1000)

        incident = fresh_incident("bench-1")
        confirmed_actions(ctx, incident, args.actions, enqueue=False)
        t0 = time.perf_counter()
        report = drain(ctx, CLUSTER)
        elapsed = time.perf_counter() - t0
        between, overlaps, _ = gaps(client, incident)
        assert len(report["ran"]) == args.actions and overlaps == 0
        print(f"one drainer, {args.actions} no-op actions: {elapsed:.3f} s → {args.actions / elapsed:7.1f} actions/s;"
              f" hand-over p50 {ms(percentile(between, .5))} p99 {ms(percentile(between, .99))}")

        client.delete(*client.keys("rq:*")) if client.keys("rq:*") else None
        incident = fresh_incident("bench-2")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACTION_", "REDIS_", "KUBE"))}
        env.update(REDIS_URL=server.url, KUBECONFIG=str(kubeconfig), ACTION_LEASE_SECONDS="30", CLUSTER_NAME=CLUSTER,
                   LOG_LEVEL="WARNING", PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}")
        for index in range(args.workers):
            log = open(workdir / f"worker-{index}.log", "wb")  # noqa: SIM115 - lives as long as the worker
            procs.append(subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", "worker", "--no-scheduler"],
                                          env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT))
        from rq import Worker

        deadline = time.monotonic() + 120
        while Worker.count(connection=client) < args.workers:  # every worker registered and listening
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start within 120 s; see " + str(workdir))
            time.sleep(0.1)
        store = ActionStore(client, ctx.keys)
        t0 = time.perf_counter()
        ids = confirmed_actions(ctx, incident, args.actions, enqueue=True)
        while not all(store.get(i).status == ActionStatus.SUCCEEDED for i in ids[-1:]) or \
                any(store.get(i).status != ActionStatus.SUCCEEDED for i in ids):
            if time.perf_counter() - t0 > 300:
                raise SystemExit("the workers did not finish within 300 s; see " + str(workdir))
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        between, overlaps, span = gaps(client, incident)
        print(f"{args.workers} RQ workers, {args.actions} confirms each enqueuing a drain: {elapsed:.3f} s from first "
              f"confirm to last outcome → {args.actions / elapsed:7.1f} actions/s; first start → last end {span:.3f} s;"
              f" hand-over p50 {ms(percentile(between, .5))} p99 {ms(percentile(between, .99))}; overlaps {overlaps}")
        return 1 if overlaps else 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.cleanup()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
