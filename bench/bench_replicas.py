"""Benchmark: sustained ``/k8s update`` throughput and CPU per update with 1, 2 and 4 bot replicas, with lag.

The replicas are production ``k8s-incident-bot serve`` processes behind Debian's HAProxy (round-robin,
readiness-checked), sharing one real Redis; Slack is the emulator, answering every write 150 ms late.
To measure the bot and not Slack, the per-channel ``chat.postMessage`` allowance is lifted (with it,
20 incident channels cap the total at ~20 posts/s and the stakeholder channel at ~1/s:
``bench_outbox`` measures that side). 20 incidents are open; updates come at ``--rate`` per second (open loop), then from 32
clients back to back (each waits for its ack: the capacity), for ``--seconds``; every update is recorded in the inbox, acknowledged, put on
the timeline and queued for two posts (incident channel and stakeholder thread) that the replicas'
drainers send.

Per replica count: updates acknowledged per second, updates *landed* per second (both posts in Slack,
from the first command to the last post), CPU seconds of the replica processes per update (user +
system from ``/proc``), and the lag from command to incident-channel post (p50/p99). The machine's
cores bound the ratio: the emulator, HAProxy, Redis and the load run on the same cores as the replicas,
so read the scaling off the CPU per update and the lag beside the throughput.

Run: ``python -m bench.bench_replicas [--replicas 1,2,4] [--rate 20,0] [--seconds 20] [--clients 32]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis as redis_lib

from bench.bench_outbox import DIGEST_MARK, STAKE, WRITE_LATENCY_S, WRITES, bot_env, open_incidents, percentile
from persistence.inbox import InboxStore
from persistence.keys import Keys
from persistence.outbox import OutboxStore
from sandbox.bot_process import BotProcess
from sandbox.front import HaproxyFront
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass(frozen=True)
class Figures:
    replicas: int
    acked: int
    ack_rate: float
    landed_rate: float
    cpu_per_update_ms: float
    lag_p50: float
    lag_p99: float
    missing: int
    doubled: int
    stake_posts: int
    digests: int


def run(replicas: int, incidents: int, seconds: float, clients: int, rate: float) -> Figures:
    with RedisServer() as redis_server, SlackEmulator(signing_secret="bench-secret", bot_token="xoxb-bench") as slack:
        slack.add_user("U_BENCH", name="bench")
        slack.add_channel(STAKE, name="stakeholders", members=[slack.bot_user_id])
        for method in ("chat.postEphemeral", "conversations.create", "conversations.setTopic", "chat.postMessage",
                       "conversations.setPurpose", "conversations.invite", "pins.add", "chat.update"):
            slack.set_rate_limit(method, 1_000_000)
        env = bot_env(slack, redis_server.url)
        bots = [BotProcess(env, free_port()) for _ in range(replicas)]
        for bot in bots:
            bot.start()
        front = HaproxyFront([b.port for b in bots]).start()
        try:
            slack.request_url = f"{front.url}/slack/events"
            channels = open_incidents(slack, incidents)
            client = redis_lib.Redis.from_url(redis_server.url)
            outbox, inbox = OutboxStore(client, Keys()), InboxStore(client, Keys())
            while outbox.pending() or inbox.pending():
                time.sleep(0.2)
            for method in WRITES:
                slack.faults.set_delay(method, WRITE_LATENCY_S)

            sent: dict[str, tuple[str, float]] = {}
            lock = threading.Lock()
            counter = iter(range(10**9))
            stop_at = time.monotonic() + seconds

            def one(i: int) -> int:
                marker, channel = f"rep-{i:06d}", channels[i % len(channels)]
                at = time.time()
                if slack.slash_command("U_BENCH", channel, f"update {marker}").status != 200:
                    return 0
                with lock:
                    sent[marker] = (channel, at)
                return 1

            def client_loop(_: int) -> int:
                acked = 0
                while time.monotonic() < stop_at:
                    acked += one(next(counter))
                return acked

            cpu_before = sum(cpu_seconds(b.process.pid) for b in bots if b.process)
            started = time.time()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                if rate:  # open loop: one command every 1/rate s, however long the acks take
                    futures = []
                    for i in range(int(rate * seconds)):
                        time.sleep(max(0.0, started + i / rate - time.time()))
                        futures.append(pool.submit(one, i))
                    acked = sum(f.result() for f in futures)
                else:  # closed loop: every client sends its next command when the last was acknowledged
                    acked = sum(pool.map(client_loop, range(clients)))
            load_seconds = time.time() - started
            deadline = time.monotonic() + 600
            while (outbox.pending() or inbox.pending()) and time.monotonic() < deadline:
                time.sleep(0.2)
            cpu = sum(cpu_seconds(b.process.pid) for b in bots if b.process) - cpu_before

            lags, last, missing, doubled = [], started, 0, 0
            stake = [m for m in slack.messages(STAKE) if m.get("bot_id") and DIGEST_MARK not in str(m.get("text"))]
            digests = sum(DIGEST_MARK in str(m.get("text")) for m in slack.messages(STAKE, include_replies=False))
            stake_posts = sum(c.params.get("channel") == STAKE for c in slack.calls_to("chat.postMessage") if c.ok)
            by_channel = {c: [m for m in slack.messages(c) if m.get("bot_id")] for c in channels}
            stake_by_marker: dict[str, int] = {}
            for m in stake:
                for word in str(m.get("text", "")).split():
                    if word.startswith("rep-"):
                        stake_by_marker[word] = stake_by_marker.get(word, 0) + 1
            for marker, (channel, at) in sent.items():
                found = [float(m["ts"]) for m in by_channel[channel] if marker in str(m.get("text", ""))]
                in_stake = stake_by_marker.get(marker, 0)
                if not found or not in_stake:
                    missing += 1
                    continue
                doubled += max(0, len(found) - 1) + max(0, in_stake - 1)
                lags.append(min(found) - at)
                last = max(last, min(found))
            last_stake = max((float(m["ts"]) for m in stake), default=last)
        finally:
            front.stop()
            for bot in bots:
                bot.stop()
    landed_seconds = max(last, last_stake) - started
    return Figures(replicas, acked, acked / load_seconds, (acked - missing) / max(landed_seconds, 1e-9),
                   cpu / max(acked, 1) * 1000, percentile(lags, 50), percentile(lags, 99), missing, doubled,
                   stake_posts, digests)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--incidents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", default="20,0",
                        help="offered updates/s, one pass each; 0: clients back to back (the capacity)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.replicas.split(",")]
    ok = True
    for rate in (float(r) for r in args.rate.split(",")):
        load = f"/k8s update at {rate:g}/s" if rate else f"{args.clients} clients sending /k8s update back to back"
        print(f"{args.incidents} incidents, {load} for {args.seconds:.0f} s through HAProxy; Slack writes "
              f"+{WRITE_LATENCY_S * 1000:.0f} ms, per-channel limit lifted; {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f} at the start")
        results = [run(n, args.incidents, args.seconds, args.clients, rate) for n in counts]
        base = results[0]
        for r in results:
            print(f"  {r.replicas} replica(s): {r.acked:5d} acked, {r.ack_rate:6.1f} acked/s, {r.landed_rate:6.1f} "
                  f"landed/s ({r.landed_rate / base.landed_rate:4.2f}x), CPU {r.cpu_per_update_ms:5.1f} ms/update "
                  f"({r.cpu_per_update_ms / base.cpu_per_update_ms:4.2f}x), incident-channel lag p50 {r.lag_p50:5.2f} s "
                  f"p99 {r.lag_p99:5.2f} s, missing {r.missing} doubled {r.doubled}; stakeholder channel "
                  f"{r.stake_posts} posts ({r.digests} digests) for {r.acked} updates")
        ok = ok and all(not r.missing and not r.doubled for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
