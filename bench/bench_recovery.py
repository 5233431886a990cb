"""Benchmark: guided recovery's loop on the demo stack — how soon after a step is confirmed the verdict with
its delta is in the channel, beside a typed ``/k8s assess`` in the same run.

The whole demo stack runs as processes (Redis, the control plane with kwok nodes, the Slack emulator, an RQ
worker with the scheduler, the production bot over HTTP). Each round breaks DNS (the demo's DNS cascade),
types ``/k8s assess`` and times it until its verdict is on the timeline, clicks the verdict's primary
recovery step (``restart deployment kube-system/coredns``) and confirms it as a second person, then times
from the confirm click to the action's end (the serialized run) and to the re-assessment's verdict with the
delta, and, side by side, from the step done (the action's ``finished_at``) to the re-assessment's early look
(the checks that decide a DNS cascade, shown in its progress message) and to its full verdict (both read from
the emulator's record of the ``chat.update`` calls, on one clock). The scenario is undone between rounds.

Run: ``python -m bench.bench_recovery [--rounds 3]``. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from chat.action_blocks import ACTION_CONFIRM
from chat.recovery_blocks import EARLY_BLOCK_PREFIX, STEP_ACTION_PREFIX
from persistence.action_store import ActionStore
from persistence.keys import Keys
from persistence.store import IncidentStore
from sandbox.demo.stack import DEMO_USER, DemoStack

SCENARIO = "dns-cascade"
CONFIRMER = "U_SRE"


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"{what}: not within {timeout} s")


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]


def _round(stack: DemoStack, client: redis.Redis, incident_id: str, channel: str) -> dict[str, float]:
    store, actions = IncidentStore(client), ActionStore(client, Keys())
    timeline = store.timeline(incident_id)
    stack.panel.inject(SCENARIO)
    try:
        count = len(timeline.entries({"assessment"}))
        typed = time.monotonic()
        stack.slack.slash_command(DEMO_USER, channel, "assess")
        _wait(lambda: len(timeline.entries({"assessment"})) > count, 60, "the typed assessment")
        assess_s = time.monotonic() - typed
        entry = timeline.entries({"assessment"})[-1]
        verdict = stack.slack.message(channel, entry.data["progress_ts"])
        step = next(b for b in _buttons(verdict) if b["action_id"].startswith(STEP_ACTION_PREFIX) and b.get("style"))
        last = int(client.get(Keys().action_seq()) or 0)
        stack.slack.click_button(DEMO_USER, channel, verdict["ts"], step["action_id"], step["value"])
        action_id = f"A{last + 1}"

        def confirmation() -> dict[str, Any] | None:
            return next((m for m in stack.slack.messages(channel) if f"action `{action_id}`" in str(m.get("blocks"))
                         and any(e["action_id"] == ACTION_CONFIRM for e in _buttons(m))), None)

        message = _wait(confirmation, 60, "the step's confirmation")
        count = len(timeline.entries({"assessment"}))
        confirmed = time.monotonic()
        stack.slack.click_button(CONFIRMER, channel, message["ts"], ACTION_CONFIRM, action_id)
        _wait(lambda: actions.get(action_id).is_final, 60, "the step to finish")
        ran_s = time.monotonic() - confirmed
        _wait(lambda: len(timeline.entries({"assessment"})) > count, 60, "the re-assessment")
        delta_s = time.monotonic() - confirmed
        after = timeline.entries({"assessment"})[-1]
        healthy = after.data.get("verdict", {}).get("scope") == "healthy"
        done_at = actions.get(action_id).finished_at
        assert done_at is not None
        updates = [c for c in stack.slack.calls_to("chat.update") if c.params.get("ts") == after.data["progress_ts"]]
        early = next(c.ts for c in updates if EARLY_BLOCK_PREFIX in str(c.params.get("blocks")))
        full = next(c.ts for c in updates if "re-assessed:" in str(c.params.get("blocks")))
        return {"assess_s": assess_s, "ran_s": ran_s, "delta_s": delta_s, "healthy": float(healthy),
                "early_s": early - done_at.timestamp(), "full_s": full - done_at.timestamp()}
    finally:
        stack.panel.undo(SCENARIO)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_recovery")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    stack = DemoStack(clusters=1)  # the figures are of one cluster (the demo default runs two)
    stack.start()
    try:
        client = redis.Redis.from_url(stack.redis.url)
        store = IncidentStore(client)
        stack.slack.slash_command(DEMO_USER, "C_GENERAL", "incident open sev1 bench recovery")
        incident = _wait(lambda: next((i for i in store.iter_all() if i.stakeholder_ts), None), 30, "the incident")
        rounds = [_round(stack, client, incident.id, incident.channel_id) for _ in range(args.rounds)]
    finally:
        stack.stop()
    print(f"{len(rounds)} round(s), DNS cascade on the demo stack (3 kwok nodes), bot over HTTP, one worker")
    for name, label in (("assess_s", "typed /k8s assess → verdict on the timeline"),
                        ("ran_s", "step confirmed → restart finished (serialized run)"),
                        ("delta_s", "step confirmed → re-assessment's verdict with the delta"),
                        ("early_s", "step done → early look (the pattern's checks; partial)"),
                        ("full_s", "step done → full verdict with the full delta")):
        values = [r[name] for r in rounds]
        print(f"  {label}: median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})")
    print(f"  healthy verdict after the step: {int(sum(r['healthy'] for r in rounds))}/{len(rounds)}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
