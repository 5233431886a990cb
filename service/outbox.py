"""Slack writes that must not be lost and must not wait for each other: queue them, drain them anywhere.

:class:`Outbox` appends a write (a channel or thread post; for a cluster's agent, which holds no Slack token,
also an edit of a message and an ephemeral) to the channel's durable FIFO in
Redis (:mod:`persistence.outbox`) and returns at once. The post-ack work that queued it is then done,
and nothing of it lives only in a process's memory: a SIGTERM, an OOM kill or a rolling deploy leaves
the write in Redis for the next drainer. :class:`Drainer` threads run in every bot process (and can run
in workers); each takes one channel at a time, sends its head, pops it once Slack accepted it, and
moves on. A channel that Slack holds back (HTTP 429, ``Retry-After``) is deferred alone: the other
channels never queue behind it. That is the head-of-line blocking this replaces, where every post-ack
thread slept on the stakeholder channel's ``Retry-After``.

Exactly once: each write carries a post id (message metadata). A re-delivery — the previous drainer
died after Slack took the post but before the pop — searches the channel for that id first.

Ordering: per channel, strictly (one lease holder, FIFO). Between channels there is no order, which
Slack does not give either.

When the stakeholder channel falls behind, the incident's commander is told once per
:data:`LATE_NOTICE_SECONDS` in the incident channel (which is not behind), with how many updates wait,
and the drainer coalesces what waits (:mod:`service.fan_in`: one digest, one reply per incident).

What answers within Slack's 3 s (the ack, ``views.open`` with its trigger) and what needs the answer of
its call (a new channel's id, the pinned header's ``ts``) stays synchronous.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from slack_sdk.models.blocks import Block

from chat.client import TRANSIENT_CODES, SlackClient
from incident.errors import SlackApiError
from incident.settings import Settings
from incident.templates import renderer_for
from incident.timeline import EntryKind
from persistence.connection import get_keys, get_redis
from persistence.outbox import Claimed, OutboxStore
from persistence.store import IncidentStore
from service import inbox
from service.fan_in import FanIn

if TYPE_CHECKING:
    from service.context import Context  # the context builds the outbox (Context.outbox)

log = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 0.05
"""How long the idle first drainer thread (the scout) waits before looking for due channels again."""
HELPER_IDLE_SECONDS = 1.0
"""How long the other idle threads wait unless woken: a thread that finds several channels due wakes them,
so an idle process polls Redis about 35 times a second instead of 16 threads × 20."""
SETTLE_RETRY_SECONDS = 0.25
"""How often a drainer retries recording a sent post while Redis is away (a Sentinel failover: seconds)."""
SETTLE_LEASE_SHARE = 0.8
"""It retries for this share of the channel's lease, so the lease never lapses under a live sender."""
MAX_ATTEMPTS = 8
"""Transient failures (5xx, timeouts) of one write before it is given up on (logged, on the timeline)."""
LATE_BACKLOG = 3
"""Stakeholder posts waiting (incl. the new one) from which the commander is told they go out late."""
LATE_WAIT_SECONDS = 5.0
"""Or: the stakeholder channel may not send for this long (a 429's Retry-After)."""
LATE_NOTICE_SECONDS = 120
DRAINER_THREADS = 16
"""Senders per process. Each waits on Slack (~150 ms a write), and one channel is one sender at a time, so
this bounds a process's posts per second (measured in ``bench/bench_replicas.py``). The first polls Redis for
due channels; the others sleep until it (or any of them) finds more than one due."""


def _blocks(blocks: list[Block] | list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if blocks is None:
        return None
    return [b.to_dict() if isinstance(b, Block) else b for b in blocks]


class Outbox:
    """Queue Slack writes for the drainers (``services.outbox`` in the service layer)."""

    def __init__(self, services: Context) -> None:
        self.services = services
        self.store = OutboxStore(services.redis, services.keys)

    def post(self, channel: str, text: str, blocks: list[Block] | list[dict[str, Any]] | None = None,
             thread_ts: str | None = None, *, incident_id: str | None = None, record_ts_as: str | None = None,
             in_stakeholder_thread: bool = False) -> str:
        """Queue a post; returns its post id (the message's metadata carries it once it is sent).

        ``record_ts_as``: once sent, the post's ``ts`` is stored in this field of the incident (the stakeholder
        announcement becomes ``stakeholder_ts``). ``in_stakeholder_thread``: the thread is the incident's
        ``stakeholder_ts`` as it is *when the post is sent* — the announcement that sets it was queued
        earlier in the same channel, so it has been sent by then.
        """
        stable = inbox.effect_id(f"post:{channel}")  # the work of an inbox entry: the same id when replayed
        post_id = stable or uuid.uuid4().hex
        waiting = self.store.push(channel, {
            "kind": "post", "channel": channel, "text": text, "blocks": _blocks(blocks), "thread_ts": thread_ts,
            "post_id": post_id, "incident_id": incident_id, "queued_at": time.time(), "record_ts_as": record_ts_as,
            "in_stakeholder_thread": in_stakeholder_thread}, once=stable is not None)
        if incident_id and channel == self.services.settings.stakeholder_channel and channel:
            self._tell_if_late(channel, waiting, incident_id)
        return post_id

    # --- writes of a process without a Slack token (a cluster's agent, service.fleet.OutboxNotifier) -------------
    def post_placeholder(self, channel: str, text: str, blocks: list[Block] | list[dict[str, Any]] | None = None,
                         thread_ts: str | None = None, *, incident_id: str | None = None) -> str:
        """Queue a post and return a placeholder for its ``ts`` (``outbox:<post id>``): updates of the message can
        name it before it is sent; :func:`real_ts` (and the drainer, at send time) turn it into the real one."""
        post_id = uuid.uuid4().hex
        self.store.push(channel, {
            "kind": "post", "channel": channel, "text": text, "blocks": _blocks(blocks), "thread_ts": thread_ts,
            "post_id": post_id, "incident_id": incident_id, "queued_at": time.time(), "remember_ts": True})
        return PLACEHOLDER + post_id

    def update(self, channel: str, ts: str, text: str, blocks: list[Block] | list[dict[str, Any]] | None = None) -> None:
        """Queue an edit of a message (``ts`` may be a placeholder of a post queued earlier in the same channel)."""
        self.store.push(channel, {"kind": "update", "channel": channel, "ts": ts, "text": text,
                                  "blocks": _blocks(blocks), "post_id": uuid.uuid4().hex, "queued_at": time.time()})

    def ephemeral(self, channel: str, user: str, text: str,
                  blocks: list[Block] | list[dict[str, Any]] | None = None) -> None:
        """Queue a message only ``user`` sees (not retried after a lost answer: Slack keeps no ephemeral to look up)."""
        self.store.push(channel, {"kind": "ephemeral", "channel": channel, "user": user, "text": text,
                                  "blocks": _blocks(blocks), "post_id": uuid.uuid4().hex, "queued_at": time.time()})

    def _tell_if_late(self, channel: str, waiting: int, incident_id: str) -> None:
        until = self.store.waits_until(channel)
        wait_s = max(0.0, (until or 0) - time.time())
        if waiting < LATE_BACKLOG and wait_s < LATE_WAIT_SECONDS:
            return
        if not self.services.redis.set(self.services.keys.outbox_late_notice(incident_id), "1", nx=True,
                                       ex=LATE_NOTICE_SECONDS):
            return
        incident = self.services.store.get(incident_id)
        text = self.services.templates.render("stakeholders_late.slack.j2", incident=incident, waiting=waiting,
                                              wait_s=wait_s, channel=channel)
        self._push_notice(incident.channel_id, text)

    def _push_notice(self, channel: str, text: str) -> None:
        """A notice of the outbox's own (deduplicated by its marker, so no stable id is needed)."""
        self.store.push(channel, {"kind": "post", "channel": channel, "text": text, "blocks": None, "thread_ts": None,
                                  "post_id": uuid.uuid4().hex, "incident_id": None, "queued_at": time.time()})


PLACEHOLDER = "outbox:"
"""Prefix of a placeholder ``ts`` (:meth:`Outbox.post_placeholder`)."""
SENT_TS_SECONDS = 7 * 24 * 3600
"""How long the real ``ts`` of a placeholder is kept (longer than any confirmation or incident message update)."""


def real_ts(redis: Any, keys: Any, ts: str | None) -> str | None:
    """``ts`` itself, or the real ``ts`` of a placeholder once its post was sent (``None`` until then)."""
    if not ts or not ts.startswith(PLACEHOLDER):
        return ts
    raw = redis.get(keys.outbox_sent_ts(ts[len(PLACEHOLDER):]))
    return raw.decode() if isinstance(raw, bytes) else raw


class Drainer:
    """Threads that send the outbox's writes, one channel each at a time; any number of processes may run one."""

    def __init__(self, settings: Settings, *, threads: int = DRAINER_THREADS, slack: SlackClient | None = None) -> None:
        self.settings = settings
        self.store = OutboxStore(get_redis(settings), get_keys(settings))
        self.slack = slack or SlackClient(settings, max_rate_limit_retries=0)
        self.incidents = IncidentStore(get_redis(settings), get_keys(settings))
        self.fan_in = FanIn(get_redis(settings), get_keys(settings), self.store,
                            lambda: renderer_for(settings.templates_dir))
        self._stop = threading.Event()
        self._more = threading.Condition()
        self._threads = [threading.Thread(target=self._run, args=(index,), name=f"outbox-{index}", daemon=True)
                         for index in range(threads)]
        self.sent = 0

    @classmethod
    def start_for(cls, settings: Settings, **kwargs: Any) -> "Drainer":
        drainer = cls(settings, **kwargs)
        for thread in drainer._threads:
            thread.start()
        return drainer

    def stop(self, timeout: float = 10.0, *, flush_until: float | None = None) -> None:
        """Stop after the writes being sent now (what waits stays in Redis for the next drainer).

        ``flush_until`` (a ``time.monotonic()`` deadline): first keep sending until nothing is queued or
        the deadline passes — a stopping replica sends what it can within its grace period.
        """
        if flush_until is not None:
            while time.monotonic() < flush_until and any(t.is_alive() for t in self._threads):
                try:
                    if self.store.pending() == 0:
                        break
                except RedisError:
                    break
                time.sleep(IDLE_WAIT_SECONDS)
        self._stop.set()
        with self._more:
            self._more.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def flush(self, timeout: float = 30.0) -> int:
        """Send everything queued now, in the calling thread (a one-off process, a test); how many were sent.

        Channels held back by a ``Retry-After`` are waited for, up to ``timeout``."""
        owner = f"{socket.gethostname()}:{os.getpid()}:flush:{uuid.uuid4().hex[:6]}"
        before, deadline = self.sent, time.monotonic() + timeout
        while self.store.pending() and time.monotonic() < deadline:
            if not self.drain_once(owner):
                time.sleep(IDLE_WAIT_SECONDS)
        return self.sent - before

    def _run(self, index: int) -> None:
        owner = f"{socket.gethostname()}:{os.getpid()}:{index}:{uuid.uuid4().hex[:6]}"
        while not self._stop.is_set():
            try:
                sent = self.drain_once(owner)
            except RedisError:
                log.warning("outbox: Redis unavailable; the drainer retries", exc_info=True)
                sent = False
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001 - a drainer thread must survive anything one write does
                log.exception("outbox: unexpected error; the drainer carries on")
                sent = False
            if sent:
                continue
            if index == 0:
                self._stop.wait(IDLE_WAIT_SECONDS)
            else:
                with self._more:
                    self._more.wait(HELPER_IDLE_SECONDS)

    def drain_once(self, owner: str) -> bool:
        """Send the head of the first due channel nobody else is sending; whether one was handled."""
        due = self.store.due_channels()
        if len(due) > 1:  # more than this thread can take: wake the idle ones
            with self._more:
                self._more.notify_all()
        for channel in due:
            claimed_at = time.monotonic()
            try:
                claimed = self.store.claim(channel, owner)
                if claimed is None:
                    continue
                self._deliver(claimed, owner)
            except RedisError:
                # Redis went away mid-delivery (a Sentinel failover), or took the lease but lost the answer:
                # hand the channel back as soon as Redis answers again (if the lease is ours), instead of
                # leaving it leased to nobody for LEASE_MS with every later write of the channel behind it.
                # The head is sent again, looking first (its attempt was counted), so a post Slack already
                # had shows once.
                self._settle(claimed_at, lambda: self.store.release(channel, owner))
                raise
            return True
        return False

    def _deliver(self, claimed: Claimed, owner: str) -> None:
        if self.fan_in.coalesce(claimed, owner):  # behind: a digest now, each incident's updates in one reply
            return
        intent = claimed.intent
        if intent.get("kind") in ("update", "ephemeral"):
            self._deliver_other(claimed, owner, intent)
            return
        incident_id = intent.get("incident_id")
        thread_ts = intent.get("thread_ts")
        if intent.get("in_stakeholder_thread") and incident_id:
            thread_ts = self.incidents.get(str(incident_id)).stakeholder_ts
        if thread_ts and str(thread_ts).startswith(PLACEHOLDER):  # a reply under an agent's message, sent before it
            thread_ts = real_ts(self.store.redis, self.store.keys, str(thread_ts))
        try:
            ts = self.slack.post_message(intent["channel"], intent["text"], intent.get("blocks"), thread_ts=thread_ts,
                                         post_id=intent["post_id"], look_first=claimed.attempt > 1)
        except SlackApiError as error:
            self._refused(claimed, owner, error)
            return
        # Slack has the post: what is left is Redis' record of it. A blip of Redis here (a failover) is
        # waited out while the channel's lease is still ours; giving up at once would leave the channel
        # leased to nobody for LEASE_MS, and every later post of the channel would wait behind it.
        claimed_at = time.monotonic()
        if intent.get("record_ts_as") and incident_id:
            self._settle(claimed_at, lambda: self.incidents.set_fields(str(incident_id),
                                                                       {str(intent["record_ts_as"]): ts}))
        if intent.get("remember_ts"):
            self._settle(claimed_at, lambda: self.store.redis.set(
                self.store.keys.outbox_sent_ts(str(intent["post_id"])), ts, ex=SENT_TS_SECONDS))
        self._settle(claimed_at, lambda: self.store.done(claimed, owner))
        self.sent += 1

    def _refused(self, claimed: Claimed, owner: str, error: SlackApiError) -> None:
        """Slack said no: a 429 waits its ``Retry-After``, a transient error backs off, anything else is given up."""
        if error.code == "ratelimited":
            self.store.defer(claimed, owner, error.retry_after or 1.0)
        elif error.code in TRANSIENT_CODES and claimed.attempt < MAX_ATTEMPTS:
            self.store.defer(claimed, owner, min(30.0, 2.0 ** claimed.attempt))
        else:
            self._give_up(claimed, owner, error.code)

    def _settle(self, claimed_at: float, step: Callable[[], object]) -> None:
        """Run a Redis step that must follow a sent post, retrying while the lease is ours; then the lease
        lapses and the next drainer re-sends the head with ``look_first`` (found by its post id: no double)."""
        deadline = claimed_at + self.store.lease_ms / 1000 * SETTLE_LEASE_SHARE
        while True:
            try:
                step()
                return
            except RedisError:
                if self._stop.is_set() or time.monotonic() + SETTLE_RETRY_SECONDS > deadline:
                    raise
                log.warning("outbox: Redis unavailable after a post was sent; retrying its record")
                time.sleep(SETTLE_RETRY_SECONDS)

    def _deliver_other(self, claimed: Claimed, owner: str, intent: dict[str, Any]) -> None:
        """An edit (its placeholder ``ts`` resolved now: the post was queued before it in this channel) or an ephemeral."""
        try:
            if intent["kind"] == "update":
                ts = real_ts(self.store.redis, self.store.keys, str(intent["ts"]))
                if ts is None:
                    self._give_up(claimed, owner, "placeholder_not_sent")
                    return
                self.slack.update_message(intent["channel"], ts, intent["text"], intent.get("blocks"))
            else:
                self.slack.post_ephemeral(intent["channel"], str(intent["user"]), intent["text"], intent.get("blocks"))
        except SlackApiError as error:
            self._refused(claimed, owner, error)
            return
        self.store.done(claimed, owner)
        self.sent += 1

    def _give_up(self, claimed: Claimed, owner: str, code: str) -> None:
        """A write Slack refuses for good (``channel_not_found``, ``is_archived``…): never silently."""
        intent = claimed.intent
        log.error("outbox: Slack refused a post to %s for good (%s) after %d attempt(s): %s", claimed.channel, code,
                  claimed.attempt, str(intent.get("text"))[:200])
        if intent.get("incident_id"):
            try:
                self.incidents.timeline(str(intent["incident_id"])).append(
                    EntryKind.BOT_ERROR, "bot", {"step": "outbox post", "channel": claimed.channel, "error": code})
            except RedisError:
                log.exception("outbox: could not record the refused post on the timeline")
        self.store.done(claimed, owner)
