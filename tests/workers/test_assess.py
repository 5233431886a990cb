"""The assessment job's Slack and timeline side, against the Slack emulator and real Redis.

Stand-in checks replace the cluster here (the real checks run in ``test_assess_cluster.py``); the
Slack traffic, the Block Kit payloads and the timeline snapshot are the production ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client as k8s

from chat.client import SlackClient
from incident.assessment import Assessment
from incident.postmortem import assessment_point
from incident.settings import Settings
from persistence.store import IncidentStore
from kube.checks import CheckSpec, Finding
from kube.client import KubeApi
from sandbox.slack import SlackEmulator
from service.assessment import WORKER_STOPPED, AssessmentJob, SlackTarget, finalize_interrupted, job_result, partial_assessment
from k8s_incident_bot.assess import format_table
from persistence.connection import get_keys

CHANNEL = "C_INC"


def finding(status: str, summary: str, **facts: Any) -> Any:
    return lambda ctx: Finding(status, summary, facts)  # type: ignore[arg-type]


STAND_IN_CHECKS = (
    CheckSpec("apiserver", "API server", finding("ok", "reachable", reachable=True, etcd_ok=True, readyz_failed=[]), 5),
    CheckSpec("nodes", "Nodes", finding("ok", "3/3 Ready", total=3, not_ready=0, unknown=0, stale_leases=0), 5),
    CheckSpec("dns", "Cluster DNS", finding("fail", "coredns 0/2 ready; kube-dns: 0 of 2 endpoint(s) ready",
                                           ready_endpoints_zero=True, ready_replicas_zero=True,
                                           endpoints_detail="0 of 2 endpoint(s) ready", deployments_detail="coredns 0/2 ready"), 5),
    CheckSpec("events", "Warning events", finding("warn", "2 Warning event(s): Unhealthy <b>&", backoff_objects=[]), 5),
)


@pytest.fixture()
def settings(slack: SlackEmulator, redis_url: str, fake_kubeconfig: Path) -> Settings:
    slack.add_channel(CHANNEL, name="inc-test", members=[slack.bot_user_id, "U_ALICE"])
    return Settings(slack_bot_token="xoxb-test-token", slack_api_url=slack.api_url, redis_url=redis_url,
                    kubeconfig=fake_kubeconfig, cluster_name="prod-eu")


def _job(settings: Settings, target: SlackTarget, redis_url: str, incident_id: str | None = "INC-1") -> AssessmentJob:
    return AssessmentJob(settings, target, redis.Redis.from_url(redis_url), incident_id, None, STAND_IN_CHECKS,
                         kube_factory=lambda s: KubeApi(k8s.ApiClient(k8s.Configuration(host="https://127.0.0.1:1"))))


def _texts(blocks: list[dict[str, Any]] | None) -> str:
    return json.dumps(blocks or [])


def test_progress_message_is_edited_in_place_then_replaced_by_the_verdict(settings: Settings, slack: SlackEmulator,
                                                                          redis_url: str) -> None:
    client = SlackClient(settings)
    progress_ts = client.post_message(CHANNEL, ":mag: Assessment requested: queued…")  # what bot/assess.py posts
    target = SlackTarget(client, CHANNEL, progress_ts)
    assessment = _job(settings, target, redis_url).run()

    updates = slack.calls_to("chat.update")
    assert len(updates) >= 2 and all(call.params["ts"] == progress_ts for call in updates)
    assert "0/4 checks done" in _texts(updates[0].params["blocks"])
    top_level = slack.messages(CHANNEL, include_replies=False)
    assert [m["ts"] for m in top_level] == [progress_ts]  # one message, edited; nothing else at the top
    final = top_level[0]
    assert "Cluster-wide failure: DNS cascade" in final["text"]
    assert "DNS cascade" in _texts(final["blocks"]) and "Recovery order" in _texts(final["blocks"])
    replies = slack.replies(CHANNEL, progress_ts)[1:]
    assert replies and "What to do" in _texts(replies[0]["blocks"])
    assert "&lt;b&gt;&amp;" in _texts(replies[0]["blocks"])  # cluster text is escaped

    entries = IncidentStore(redis.Redis.from_url(redis_url), get_keys(settings)).timeline("INC-1").entries({"assessment"})
    assert len(entries) == 1
    snapshot = entries[0].data["snapshot"]
    assert Assessment.from_json(snapshot).verdict == assessment.verdict
    point = assessment_point(entries[0])  # what the post-mortem and drills read
    assert point.patterns == ("DNS cascade",) and point.scope == "cluster-wide" and point.failing == ("dns",)
    result = job_result(assessment, target)
    assert result["patterns"] == ["dns-cascade"] and result["progress_ts"] == progress_ts


def test_without_a_progress_message_one_is_posted(settings: Settings, slack: SlackEmulator, redis_url: str) -> None:
    target = SlackTarget(SlackClient(settings), CHANNEL)
    _job(settings, target, redis_url, incident_id=None).run()
    top_level = slack.messages(CHANNEL, include_replies=False)
    assert len(top_level) == 1 and top_level[0]["ts"] == target.progress_ts
    assert "DNS cascade" in top_level[0]["text"]


def test_outside_an_incident_channel_the_answer_goes_through_the_response_url(settings: Settings, slack: SlackEmulator,
                                                                              redis_url: str) -> None:
    url = slack.workspace.issue_response_url("commands", channel=CHANNEL, user="U_ALICE")
    target = SlackTarget(SlackClient(settings), CHANNEL, response_url=url)
    _job(settings, target, redis_url, incident_id=None).run()
    assert slack.messages(CHANNEL) == []
    texts = [entry["text"] for entry in slack.ephemeral]
    assert 2 <= len(texts) <= 5  # first progress, the verdict, the details: within Slack's five posts
    assert any("Cluster-wide failure: DNS cascade" in text for text in texts)


def test_a_deleted_progress_message_does_not_lose_the_verdict(settings: Settings, slack: SlackEmulator, redis_url: str) -> None:
    target = SlackTarget(SlackClient(settings), CHANNEL, progress_ts="1.000001")  # never existed
    _job(settings, target, redis_url, incident_id=None).run()
    top_level = slack.messages(CHANNEL, include_replies=False)
    assert len(top_level) == 1 and "DNS cascade" in top_level[0]["text"]


def test_an_interrupted_attempt_leaves_a_partial_verdict_naming_the_missing_checks(settings: Settings) -> None:
    state = {
        "started_at": "2026-03-01T12:00:00+00:00", "attempt": 1,
        "checks": [["apiserver", "API server"], ["nodes", "Nodes"], ["dns", "Cluster DNS"]],
        "results": [{"name": "apiserver", "title": "API server", "status": "ok", "summary": "reachable",
                     "facts": {"reachable": True}, "duration_s": 0.1}],
    }
    assessment = partial_assessment(settings, state, "the worker running it stopped")
    assert [c.status for c in assessment.checks] == ["ok", "error", "error"]
    assert assessment.interrupted == {"reason": "the worker running it stopped", "started_at": state["started_at"],
                                      "attempt": 1, "finished": ["apiserver"], "missing": ["nodes", "dns"]}
    assert [(u.check, u.reason) for u in assessment.verdict.unchecked] == [("nodes", WORKER_STOPPED), ("dns", WORKER_STOPPED)]
    table = " ".join(format_table(assessment).split())
    assert "interrupted" in table and "missing then: nodes, dns" in table


def test_finalize_finds_nothing_when_no_job_died(settings: Settings, slack: SlackEmulator, redis_url: str) -> None:
    assert finalize_interrupted(settings, SlackClient(settings), redis.Redis.from_url(redis_url)) == []


def test_cli_table_shows_checks_verdict_and_recovery(settings: Settings, redis_url: str, slack: SlackEmulator) -> None:
    assessment = _job(settings, SlackTarget(SlackClient(settings), CHANNEL), redis_url, incident_id=None).run()
    table = format_table(assessment)
    assert "VERDICT: Cluster-wide failure: DNS cascade" in table
    assert "RECOVERY ORDER" in table and "1. DNS and ingress" in table
    assert table.splitlines()[2].startswith("CHECK")
