"""An agent's Slack writes go through the outbox (it holds no token); the bot's drainer sends them in order.

A post queued with a placeholder ``ts`` is edited, replied to in its thread and ephemerally followed up
before it was even sent; the drainer resolves the placeholder at send time. Real Redis, the Slack emulator.
"""

from __future__ import annotations

from pathlib import Path

from incident.settings import Settings
from sandbox.slack import SlackEmulator
from service.cluster_jobs import AGENT_RUNTIME, OutboxNotifier, job_context
from service.context import Context
from service.outbox import Drainer, real_ts
from service.runtime import DEFAULT_RUNTIME
from tests.bot.helpers import wait_until
from tests.fixtures.slack import BOT_TOKEN

CHANNEL = "C_AGENT"


def test_placeholder_post_then_edit_reply_and_ephemeral(slack: SlackEmulator, redis_url: str,
                                                        fake_kubeconfig: Path) -> None:
    slack.add_channel(CHANNEL, name="agent-talk", members=[slack.bot_user_id, "U_ALICE"])
    agent = Context.from_settings(Settings(_env_file=None, redis_url=redis_url, kubeconfig=fake_kubeconfig,  # type: ignore[call-arg]
                                           cluster_name="edge"))
    assert agent.settings.slack_bot_token is None
    agent_job = job_context(agent, "edge")
    assert agent_job.runtime_path == AGENT_RUNTIME and isinstance(agent_job.runtime.notifier, OutboxNotifier)
    notifier = agent_job.runtime.notifier

    placeholder = notifier.post_message(CHANNEL, "Confirm cordon node x?", None)
    assert placeholder.startswith("outbox:") and real_ts(agent.redis, agent.keys, placeholder) is None
    notifier.post_message(CHANNEL, "progress: 1 of 3 pods evicted", None, thread_ts=placeholder)
    notifier.update_message(CHANNEL, placeholder, "Cordon node x: running")
    notifier.post_ephemeral(CHANNEL, "U_ALICE", "Rejected: no such node")
    assert not slack.calls, "nothing is sent by the agent itself"

    bot = Settings(_env_file=None, redis_url=redis_url, kubeconfig=fake_kubeconfig, slack_bot_token=BOT_TOKEN,  # type: ignore[call-arg]
                   slack_api_url=slack.api_url)
    drainer = Drainer.start_for(bot, threads=2)
    try:
        wait_until(lambda: drainer.sent == 4)
    finally:
        drainer.stop()
    ts = real_ts(agent.redis, agent.keys, placeholder)
    assert ts is not None
    top = slack.messages(CHANNEL, include_replies=False)
    assert [m["text"] for m in top] == ["Cordon node x: running"] and top[0]["ts"] == ts
    assert [m["text"] for m in slack.replies(CHANNEL, ts)][-1] == "progress: 1 of 3 pods evicted"
    assert [e["text"] for e in slack.ephemeral] == ["Rejected: no such node"]
    # A process with the token keeps the Slack notifier.
    central = Context.from_settings(bot)
    assert job_context(central, "default").runtime_path == DEFAULT_RUNTIME
