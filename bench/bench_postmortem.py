"""Benchmark: draft the post-mortem of an incident with 10,000 channel messages (target < 5 s, < 200 MB).

A real Redis gets an incident whose timeline holds N messages (some threaded, some flagged as
action items or pinned), assessments and action audit lines; the draft is then built and rendered
exactly as the RQ job does (``service.postmortem.draft_postmortem``). Wall time, peak Python
allocations (tracemalloc) and the process's peak RSS are printed beside the targets, with the
time to read the raw stream alone for comparison.

Run: ``python -m bench.bench_postmortem [--messages 10000]``.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import redis

from incident.model import Incident
from incident.settings import Settings
from persistence.store import IncidentStore
from sandbox.redis_server import RedisServer
from service.postmortem import draft_postmortem

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def fill(client: redis.Redis, messages: int) -> str:
    store = IncidentStore(client)
    incident = store.create(Incident(id="BENCH-1", title="API down", severity="sev1", channel_id="C_BENCH",
                                     channel_name="inc-bench", opened_by="U1", opened_at=T0, commander="U1"))
    timeline = store.timeline(incident.id)
    pipe = client.pipeline(transaction=False)
    step = timedelta(seconds=3600 / max(messages, 1))
    for i in range(messages):
        at = T0 + step * i
        ts = f"{1800000000 + i}.000100"
        pipe.xadd(timeline.stream_key, {"kind": "message", "actor": f"U{i % 25}", "at": repr(at.timestamp()),
                                        "data": f'{{"channel": "C_BENCH", "ts": "{ts}", "user": "U{i % 25}", '
                                                f'"text": "message {i} about the outage, nodes and pods and DNS"}}'})
        if i % 500 == 0:
            pipe.xadd(timeline.stream_key, {"kind": "reaction_added", "actor": "U1", "at": repr(at.timestamp()),
                                            "data": f'{{"channel": "C_BENCH", "ts": "{ts}", "reaction": "action-item"}}'})
        if i % 2000 == 0:
            pipe.xadd(timeline.stream_key, {"kind": "assessment", "actor": "bot", "at": repr(at.timestamp()),
                                            "data": '{"verdict": {"scope": "cluster-wide", "headline": "Node failure", '
                                                    '"patterns": [{"title": "Node failure"}]}, "snapshot": {"checks": '
                                                    '[{"name": "nodes", "status": "fail"}]}}'})
            pipe.xadd(timeline.stream_key, {"kind": "action", "actor": "U2", "at": repr(at.timestamp()),
                                            "data": '{"description": "cordon node kwok-node-1", "outcome": "succeeded"}'})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return incident.id


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args(argv)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        incident_id = fill(client, args.messages)
        settings = Settings(redis_url=server.url)

        started = time.perf_counter()
        raw = sum(1 for _ in IncidentStore(client).timeline(incident_id).iter_entries())
        raw_s = time.perf_counter() - started

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        report, markdown = draft_postmortem(settings, client, incident_id)
        draft_s = time.perf_counter() - started
        tracemalloc.start()  # a second, traced run: tracemalloc slows allocation, so it is not timed
        draft_postmortem(settings, client, incident_id)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"timeline entries           {raw:>10,}")
    print(f"read raw stream            {raw_s:>10.2f} s")
    print(f"draft (read+build+render)  {draft_s:>10.2f} s   target < 5 s   ratio to raw read {draft_s / raw_s:.2f}x")
    print(f"peak Python allocations    {peak / 2**20:>10.1f} MB")
    print(f"process peak RSS           {rss_after:>10.1f} MB   (before drafting {rss_before:.1f} MB)   target < 200 MB")
    print(f"draft size                 {len(markdown):>10,} chars; {len(report.action_items)} action items, "
          f"{len(report.key_events)} key events")
    return 0 if draft_s < 5 and rss_after < 200 else 1


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
