"""Benchmark: the Alertmanager intake — notifications accepted per second, and alert → incident channel latency.

Real processes: Redis, the Slack emulator, the production bot (``k8s-incident-bot serve``), one RQ worker
(``k8s-incident-bot worker``) and Alertmanager v0.35.0 built from source (group_wait 1 s).

1. **Accepted per second**: 8 client threads POST distinct, valid notifications (one alert each, each its own
   group) straight to ``/alerts/alertmanager`` for a fixed count, then the same notifications again (the
   duplicate path: Alertmanager's retries). This is the intake alone: authentication, bounded read, schema
   validation, the idempotency check and the RQ enqueue; the worker is not running, so nothing competes.
2. **One group**: one critical alert posted to Alertmanager's API; measured from Alertmanager's send (the
   notification's arrival at the bot, RQ's ``enqueued_at``) and from the post to Alertmanager (which adds its
   ``group_wait``) to the incident channel's ``conversations.create``. Median of several.
3. **The storm**: 500 critical alerts in 50 groups at once; the time until all 50 incident channels exist, with
   Slack's real method tiers (``conversations.create`` is Tier 2: about 20 a minute) and, side by side, with the
   tiers lifted (the bot's own floor). Doubled or missing channels are counted.

Run: ``python -m bench.bench_alerts [--notifications 2000] [--single 5] [--groups 50 --per-group 10] [--workers 1]
[--parts intake,single,storm-real,storm-lifted]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Queue

from sandbox.alertmanager import LocalAlertmanager, Routing, alert
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator

SECRET = "bench-secret"
TOKEN = "xoxb-bench"
AM_TOKEN = "bench-alertmanager-token"
STAKE = "C_STAKE"
TRIAGE = "C_TRIAGE"
THREADS = 8


def _environment(slack: SlackEmulator, redis_url: str, port: int) -> dict[str, str]:
    kubeconfig = Path(tempfile.mkdtemp()) / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    return {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
            "STAKEHOLDER_CHANNEL": STAKE, "REDIS_URL": redis_url, "KUBECONFIG": str(kubeconfig),
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port), "LOG_LEVEL": "WARNING", "ALERTMANAGER_TOKEN": AM_TOKEN,
            "ALERT_TRIAGE_CHANNEL": TRIAGE, "METRICS_PORT": str(free_port())}


class Stack:
    """Redis, the emulator, the bot and (on demand) a worker, torn down on exit."""

    def __init__(self, *, real_tiers: bool) -> None:
        self.redis_server = RedisServer(appendonly=False).start()
        self.slack = SlackEmulator(signing_secret=SECRET, bot_token=TOKEN).start()
        self.slack.add_channel(STAKE, name="stakeholders", members=[self.slack.bot_user_id])
        self.slack.add_channel(TRIAGE, name="alerts-triage", members=[self.slack.bot_user_id])
        if not real_tiers:
            for method in ("conversations.create", "conversations.setTopic", "conversations.setPurpose",
                           "conversations.invite", "pins.add", "chat.postMessage", "usergroups.users.list"):
                self.slack.set_rate_limit(method, 100_000)
        self.port = free_port()
        self.env = _environment(self.slack, self.redis_server.url, self.port)
        self.bot = subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", "serve"], env=self.env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers: list[subprocess.Popen[bytes]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("the bot did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_worker(self) -> None:
        env = {**self.env, "METRICS_PORT": str(free_port())}
        self.workers.append(subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", "worker"], env=env,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def created(self) -> dict[str, float]:
        """Incident channel name → when ``conversations.create`` made it."""
        return {str(c.params.get("name")): c.ts for c in self.slack.calls_to("conversations.create") if c.ok}

    def close(self) -> None:
        for process in (*self.workers, self.bot):
            process.terminate()
            process.wait(timeout=30)
        self.slack.stop()
        self.redis_server.cleanup()


def _notification(n: int) -> dict[str, Any]:
    labels = {"alertname": f"Bench{n:05d}", "severity": "info", "cluster": "bench"}
    return {"version": "4", "groupKey": f'{{}}:{{alertname="Bench{n:05d}"}}', "status": "firing",
            "receiver": "k8s-incident-bot", "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels,
            "commonAnnotations": {}, "externalURL": "http://alertmanager", "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "bench"},
                        "startsAt": "2026-12-02T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus/graph", "fingerprint": f"{n:016x}"}]}


def accepted_per_second(count: int) -> dict[str, float]:
    stack = Stack(real_tiers=True)
    try:
        bodies = [json.dumps(_notification(n)).encode() for n in range(count)]
        results: dict[str, float] = {}
        for label in ("new", "duplicate"):
            statuses: list[str] = []
            lock = threading.Lock()

            def send(part: list[bytes]) -> None:
                session = requests.Session()
                headers = {"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"}
                for body in part:
                    answer = session.post(f"{stack.url}/alerts/alertmanager", data=body, headers=headers, timeout=30)
                    with lock:
                        statuses.append(answer.json().get("status", str(answer.status_code)))

            threads = [threading.Thread(target=send, args=(bodies[i::THREADS],)) for i in range(THREADS)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            expected = "queued" if label == "new" else "duplicate"
            results[label] = count / elapsed
            results[f"{label}_wrong"] = float(sum(1 for s in statuses if s != expected))
        queued = Queue("k8sbot-default", connection=Redis.from_url(stack.redis_server.url)).count
        results["jobs"] = float(queued)
        return results
    finally:
        stack.close()


def _channels_for(stack: Stack, names: list[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        created = stack.created()
        found = {name: ts for name, ts in created.items() if any(n.lower() in name for n in names)}
        if len(found) >= len(names):
            return found
        time.sleep(0.05)
    return {name: ts for name, ts in stack.created().items() if any(n.lower() in name for n in names)}


def _received_at(redis: Redis) -> dict[str, float]:
    """Alert group id → when its first notification reached the bot (the job's ``enqueued_at``)."""
    from rq.job import Job
    from rq.registry import FinishedJobRegistry

    received: dict[str, float] = {}
    for job_id in FinishedJobRegistry("k8sbot-default", connection=redis).get_job_ids():
        job = Job.fetch(job_id, connection=redis)
        group = str(job.description).removeprefix("alert group ")
        if job.enqueued_at is not None:
            at = job.enqueued_at.timestamp()
            received[group] = min(at, received.get(group, at))
    return received


def one_group(repeats: int) -> dict[str, list[float]]:
    stack = Stack(real_tiers=True)
    manager = LocalAlertmanager(webhook_url=f"{stack.url}/alerts/alertmanager", token=AM_TOKEN,
                                routing=Routing(group_wait="1s", group_interval="5s"))
    try:
        manager.start()
        stack.start_worker()
        from_send: list[float] = []
        from_post: list[float] = []
        redis = Redis.from_url(stack.redis_server.url)
        for n in range(repeats):
            name = f"SingleGroup{n}"
            posted = time.time()
            manager.post_alerts([alert(name, cluster="bench")])
            created = _channels_for(stack, [name], 60)
            if not created:
                raise RuntimeError(f"no channel for {name}")
            channel_at = min(created.values())
            deadline = time.monotonic() + 30
            arrivals: list[float] = []
            while not arrivals and time.monotonic() < deadline:  # the job is listed as finished after its Slack calls
                arrivals = [a for a in _received_at(redis).values() if a >= posted]
                time.sleep(0.05)
            from_post.append(channel_at - posted)
            if arrivals:
                from_send.append(channel_at - min(arrivals))
        return {"from_send": from_send, "from_post": from_post}
    finally:
        manager.stop()
        stack.close()


def storm(groups: int, per_group: int, *, real_tiers: bool, workers: int = 1) -> dict[str, float]:
    stack = Stack(real_tiers=real_tiers)
    manager = LocalAlertmanager(webhook_url=f"{stack.url}/alerts/alertmanager", token=AM_TOKEN,
                                routing=Routing(group_wait="1s", group_interval="5s"))
    try:
        manager.start()
        for _ in range(workers):
            stack.start_worker()
        names = [f"Storm{g:03d}" for g in range(groups)]
        posted = time.time()
        manager.post_alerts([alert(name, cluster="bench", pod=f"p{n}") for name in names for n in range(per_group)])
        created = _channels_for(stack, names, 900)
        time.sleep(1.0)
        received = _received_at(Redis.from_url(stack.redis_server.url))
        first_send = min(received.values()) if received else posted
        doubled = len(stack.created()) - len(created)
        return {"all_channels_after_post": max(created.values()) - posted if created else float("nan"),
                "all_channels_after_first_send": max(created.values()) - first_send if created else float("nan"),
                "median_channel_after_send": statistics.median(
                    sorted(created.values())) - first_send if created else float("nan"),
                "channels": float(len(created)), "doubled": float(doubled), "missing": float(groups - len(created))}
    finally:
        manager.stop()
        stack.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_alerts")
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--single", type=int, default=5)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--per-group", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="RQ workers during the storm")
    parser.add_argument("--parts", default="intake,single,storm-real,storm-lifted",
                        help="comma-separated: intake, single, storm-real, storm-lifted")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if "intake" in parts:
        _intake(args.notifications)
    if "single" in parts:
        _single(args.single)
    for real in (True, False):
        if ("storm-real" if real else "storm-lifted") not in parts:
            continue
        result = storm(args.groups, args.per_group, real_tiers=real, workers=args.workers)
        label = "Slack's real tiers (conversations.create ~20/min)" if real else "tiers lifted (the bot's floor)"
        print(f"storm, {args.groups * args.per_group} alerts in {args.groups} groups, {args.workers} worker(s), "
              f"{label}: all {result['channels']:.0f} channels {result['all_channels_after_first_send']:.1f} s after "
              f"Alertmanager's first send ({result['all_channels_after_post']:.1f} s after the post), median "
              f"{result['median_channel_after_send']:.1f} s; doubled {result['doubled']:.0f}, missing "
              f"{result['missing']:.0f}", flush=True)
    return 0


def _intake(count: int) -> None:
    rates = accepted_per_second(count)
    print(f"intake, {count} notifications from {THREADS} threads: "
          f"{rates['new']:.0f}/s accepted (queued), {rates['duplicate']:.0f}/s retries acknowledged as duplicates; "
          f"wrong answers {rates['new_wrong']:.0f}+{rates['duplicate_wrong']:.0f}, jobs queued {rates['jobs']:.0f}",
          flush=True)


def _single(repeats: int) -> None:
    single = one_group(repeats)
    print(f"one group, {repeats} runs: Alertmanager's send → incident channel median "
          f"{statistics.median(single['from_send']):.2f} s (max {max(single['from_send']):.2f}); "
          f"post to Alertmanager → channel median {statistics.median(single['from_post']):.2f} s "
          f"(includes its 1 s group_wait)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
