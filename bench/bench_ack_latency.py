"""Benchmark: acknowledgement latency of ``/k8s`` commands at 50 concurrent requests (target p99 < 100 ms).

The production bot (``k8s-incident-bot serve``, Bolt under waitress) runs as its own process against a
real Redis and the Slack emulator; the emulator signs and sends slash commands like Slack, 50 at a
time, and measures how long the bot takes to answer each HTTP request (the ack). Side by side, the
same load against the bot's ``/healthz`` shows what the HTTP server alone costs, so the ratio is the
price of signature checking, parsing and Bolt's dispatch.

Run: ``python -m bench.bench_ack_latency [--requests 1000] [--concurrency 50]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator

SECRET = "bench-secret"
TOKEN = "xoxb-bench"
COMMANDS = ("help", "incident status", "frobnicate", "severity sev9", "update all good")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run(requests: int, concurrency: int) -> int:
    with RedisServer() as redis_server, SlackEmulator(signing_secret=SECRET, bot_token=TOKEN) as slack:
        slack.add_user("U_BENCH", name="bench")
        slack.add_channel("C_STAKE", name="stakeholders", members=[slack.bot_user_id])
        slack.set_rate_limit("chat.postEphemeral", None)
        port = free_port()
        kubeconfig = Path(tempfile.mkdtemp()) / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
        env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
               "STAKEHOLDER_CHANNEL": "C_STAKE", "REDIS_URL": redis_server.url, "KUBECONFIG": str(kubeconfig),
               "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port), "LOG_LEVEL": "WARNING"}
        bot = subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.2)
            slack.request_url = f"http://127.0.0.1:{port}/slack/events"

            def command(i: int) -> float:
                response = slack.slash_command("U_BENCH", "C_GENERAL", COMMANDS[i % len(COMMANDS)])
                assert response.status == 200, response
                return response.elapsed_seconds * 1000

            def health(i: int) -> float:
                started = time.perf_counter()
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
                return (time.perf_counter() - started) * 1000

            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                list(pool.map(command, range(concurrency)))  # warm-up
                started = time.perf_counter()
                acks = list(pool.map(command, range(requests)))
                ack_wall = time.perf_counter() - started
                started = time.perf_counter()
                bare = list(pool.map(health, range(requests)))
                bare_wall = time.perf_counter() - started
        finally:
            bot.terminate()
            bot.wait(timeout=10)
    p50, p99 = percentile(acks, 50), percentile(acks, 99)
    b50, b99 = percentile(bare, 50), percentile(bare, 99)
    print(f"{requests} requests, {concurrency} concurrent, bot in its own process")
    print(f"/k8s ack      p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(acks):7.1f} ms  "
          f"{requests / ack_wall:6.0f} req/s   target p99 < 100 ms")
    print(f"/healthz      p50 {b50:7.1f} ms  p99 {b99:7.1f} ms  max {max(bare):7.1f} ms  {requests / bare_wall:6.0f} req/s")
    print(f"ratio ack/healthz  p50 {p50 / b50:.2f}x  p99 {p99 / b99:.2f}x;  mean ack {statistics.mean(acks):.1f} ms; "
          f"slowest > 3 s: {sum(1 for a in acks if a > 3000)}")
    return 0 if p99 < 100 else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    return run(args.requests, args.concurrency)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
