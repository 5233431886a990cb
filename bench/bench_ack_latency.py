"""Benchmark: acknowledgement latency of ``/k8s`` commands at 50 concurrent requests, over HTTP and Socket Mode
(target p99 < 100 ms for both).

The production bot runs as its own process against a real Redis and the Slack emulator, first as
``k8s-incident-bot serve`` (Bolt under waitress; the emulator signs and POSTs slash commands like
Slack), then as ``k8s-incident-bot socket`` (slack_sdk's Socket Mode client; the emulator sends the same
commands as ``slash_commands`` envelopes over the WebSocket and waits for the acknowledgement). The
load is the same: the same commands, the same number, 50 at a time, in the same run.

Beside each, what the transport alone costs: the same load against the bot's ``/healthz`` (HTTP
server, no Slack), and against a bare WebSocket client that acknowledges every envelope at once (the
emulator's Socket Mode side, no Bolt). The ratio to those is the price of signature checking (HTTP),
parsing and Bolt's dispatch.

Run: ``python -m bench.bench_ack_latency [--requests 1000] [--concurrency 50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from slack_sdk import WebClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sandbox.bot_process import BotProcess
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator

SECRET = "bench-secret"
TOKEN = "xoxb-bench"
COMMANDS = ("help", "incident status", "frobnicate", "severity sev9", "update all good")
TARGET_P99_MS = 100.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Figures:
    label: str
    samples: list[float]
    wall_seconds: float

    def line(self, target: bool = False) -> str:
        p50, p99 = percentile(self.samples, 50), percentile(self.samples, 99)
        goal = f"   target p99 < {TARGET_P99_MS:.0f} ms" if target else ""
        return (f"{self.label:<24} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(self.samples):7.1f} ms  "
                f"{len(self.samples) / self.wall_seconds:6.0f} req/s{goal}")

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)


def measure(label: str, call: Callable[[int], float], requests: int, concurrency: int) -> Figures:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(call, range(concurrency)))  # warm-up
        started = time.perf_counter()
        samples = list(pool.map(call, range(requests)))
        return Figures(label, samples, time.perf_counter() - started)


@contextmanager
def bare_socket_app(slack: SlackEmulator) -> Iterator[None]:
    """A WebSocket client that acknowledges every envelope at once: Socket Mode's own cost."""
    url = WebClient(base_url=slack.api_url).apps_connections_open(app_token=slack.app_token)["url"]
    with connect(str(url)) as ws:
        ws.recv()  # hello

        def answer() -> None:
            try:
                for text in ws:
                    ws.send(json.dumps({"envelope_id": json.loads(text)["envelope_id"]}))
            except ConnectionClosed:
                pass

        threading.Thread(target=answer, daemon=True).start()
        slack.wait_for_socket_connections(1)
        yield


def run(requests: int, concurrency: int) -> int:
    with RedisServer() as redis_server, SlackEmulator(signing_secret=SECRET, bot_token=TOKEN) as slack:
        slack.add_user("U_BENCH", name="bench")
        slack.add_channel("C_STAKE", name="stakeholders", members=[slack.bot_user_id])
        slack.set_rate_limit("chat.postEphemeral", None)
        port = free_port()
        kubeconfig = Path(tempfile.mkdtemp()) / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
        env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
               "SLACK_APP_TOKEN": slack.app_token, "STAKEHOLDER_CHANNEL": "C_STAKE", "REDIS_URL": redis_server.url,
               "KUBECONFIG": str(kubeconfig), "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port), "LOG_LEVEL": "WARNING"}

        def command(i: int) -> float:
            response = slack.slash_command("U_BENCH", "C_GENERAL", COMMANDS[i % len(COMMANDS)])
            assert response.status == 200, response
            return response.elapsed_seconds * 1000

        def health(i: int) -> float:
            started = time.perf_counter()
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
            return (time.perf_counter() - started) * 1000

        with BotProcess(env, port, command="serve"):
            slack.request_url = f"http://127.0.0.1:{port}/slack/events"
            http_ack = measure("HTTP /k8s ack", command, requests, concurrency)
            http_bare = measure("HTTP /healthz (bare)", health, requests, concurrency)

        slack.socket_mode = True
        with BotProcess(env, port, command="socket", ready_path="/readyz?exclude=kubernetes"):  # connected
            socket_ack = measure("Socket Mode /k8s ack", command, requests, concurrency)
        with bare_socket_app(slack):
            socket_bare = measure("Socket Mode bare ack", command, requests, concurrency)

    print(f"{requests} requests, {concurrency} concurrent, bot in its own process, same load over both transports")
    for figures, target in ((http_ack, True), (http_bare, False), (socket_ack, True), (socket_bare, False)):
        print(figures.line(target))
    for ack, bare in ((http_ack, http_bare), (socket_ack, socket_bare)):
        slow = sum(1 for a in ack.samples if a > 3000)
        print(f"{ack.label:<24} ratio to bare p50 {ack.p50 / bare.p50:.2f}x  p99 {ack.p99 / bare.p99:.2f}x;  "
              f"mean {statistics.mean(ack.samples):.1f} ms; slower than 3 s: {slow}")
    print(f"Socket Mode / HTTP ack      p50 {socket_ack.p50 / http_ack.p50:.2f}x  "
          f"p99 {socket_ack.p99 / http_ack.p99:.2f}x")
    return 0 if http_ack.p99 < TARGET_P99_MS and socket_ack.p99 < TARGET_P99_MS else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    return run(args.requests, args.concurrency)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
