"""Health, readiness and Prometheus metrics of the real HTTP server, and what the metrics count."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bot.server import build_wsgi_app
from service.context import Context
from chat.client import SlackClient
from observability import metrics
from incident.errors import SlackApiError
from incident.settings import Settings
from sandbox.cluster import LocalCluster
from sandbox.slack import SlackEmulator
from tests.bot.helpers import wait_until
from tests.fixtures.slack import RunningBot
from service.jobs import get_queue

REPO = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def _scrape(bot: RunningBot) -> str:
    response = requests.get(f"{bot.url}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def test_healthz_answers_while_the_process_runs(bot_server: RunningBot) -> None:
    response = requests.get(f"{bot_server.url}/healthz", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_redis_and_kubernetes_and_can_leave_kubernetes_out(bot_server: RunningBot) -> None:
    # The fixture's kubeconfig names no cluster: Kubernetes is not reachable, Redis is.
    response = requests.get(f"{bot_server.url}/readyz", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["redis"] == "ok" and body["kubernetes"] != "ok"
    excluded = requests.get(f"{bot_server.url}/readyz?exclude=kubernetes", timeout=10)
    assert excluded.status_code == 200 and excluded.json() == {"status": "ready", "redis": "ok"}


def test_readyz_fails_when_redis_is_down(bot_settings: Settings) -> None:
    settings = bot_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    services = Context.from_settings(settings)
    app = build_wsgi_app(settings, services)
    statuses: list[str] = []
    try:
        body = b"".join(app({"PATH_INFO": "/readyz", "QUERY_STRING": "exclude=kubernetes", "REQUEST_METHOD": "GET"},
                            lambda status, headers: statuses.append(status)))
    finally:
        app.drain()
    assert statuses == ["503 Service Unavailable"] and b"ConnectionError" in body


@pytest.mark.cluster
def test_readyz_is_ready_against_the_real_cluster(bot_settings: Settings, k8s_cluster: LocalCluster) -> None:
    settings = bot_settings.model_copy(update={"kubeconfig": k8s_cluster.kubeconfig})
    app = build_wsgi_app(settings, Context.from_settings(settings))
    statuses: list[str] = []
    try:
        body = b"".join(app({"PATH_INFO": "/readyz", "REQUEST_METHOD": "GET"},
                            lambda status, headers: statuses.append(status)))
    finally:
        app.drain()
    assert statuses == ["200 OK"], body
    assert b'"kubernetes": "ok"' in body and b'"redis": "ok"' in body


def test_metrics_show_queue_depths_read_at_scrape_time(bot_server: RunningBot) -> None:
    settings = bot_server.settings
    assert _value(_scrape(bot_server), "k8s_incident_bot_queue_depth", queue="assess") == 0
    queue = get_queue(settings, "assess")
    queue.enqueue("builtins.print", "one")
    queue.enqueue("builtins.print", "two")
    text = _scrape(bot_server)
    assert _value(text, "k8s_incident_bot_queue_depth", queue="assess") == 2
    assert _value(text, "k8s_incident_bot_queue_depth", queue="actions") == 0


def test_metrics_count_commands_by_name_and_outcome(bot_server: RunningBot, slack: SlackEmulator) -> None:
    before = _scrape(bot_server)
    slack.slash_command("U_ALICE", "C_GENERAL", "help")
    slack.slash_command("U_ALICE", "C_GENERAL", "frobnicate now")

    def counted() -> bool:
        text = _scrape(bot_server)
        return (_value(text, "k8s_incident_bot_commands_total", command="help", outcome="ok")
                > _value(before, "k8s_incident_bot_commands_total", command="help", outcome="ok")
                and _value(text, "k8s_incident_bot_commands_total", command="unparsed", outcome="invalid")
                > _value(before, "k8s_incident_bot_commands_total", command="unparsed", outcome="invalid"))

    wait_until(counted, timeout=10)


def test_slack_errors_and_rate_limits_are_counted_by_method(bot_settings: Settings, slack: SlackEmulator) -> None:
    client = SlackClient(bot_settings)
    before = metrics.render()[0].decode()
    slack.fail_next("conversations.create", "name_taken")
    with pytest.raises(SlackApiError):
        client.call("conversations.create", name="inc-taken")
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    client.post_message("C_STAKE", "after one 429")
    after = metrics.render()[0].decode()
    assert _value(after, "k8s_incident_bot_slack_api_errors_total", method="conversations.create", error="name_taken") == \
        _value(before, "k8s_incident_bot_slack_api_errors_total", method="conversations.create", error="name_taken") + 1
    assert _value(after, "k8s_incident_bot_slack_api_rate_limited_total", method="chat.postMessage") == \
        _value(before, "k8s_incident_bot_slack_api_rate_limited_total", method="chat.postMessage") + 1


def test_job_lock_and_verdict_helpers_record() -> None:
    with metrics.job_timer("assess"):
        time.sleep(0.01)
    with pytest.raises(ValueError), metrics.job_timer("assess"):
        raise ValueError("boom")
    metrics.record_lock_wait("sandbox", 1.5)
    metrics.record_verdict("dns-cascade", "cluster-wide")
    text = metrics.render()[0].decode()
    assert _value(text, "k8s_incident_bot_job_duration_seconds_count", kind="assess", outcome="ok") >= 1
    assert _value(text, "k8s_incident_bot_job_duration_seconds_count", kind="assess", outcome="error") >= 1
    assert _value(text, "k8s_incident_bot_action_lock_wait_seconds_sum", cluster="sandbox") >= 1.5
    assert _value(text, "k8s_incident_bot_assessment_verdicts_total", pattern="dns-cascade", scope="cluster-wide") >= 1


def test_metrics_of_forked_rq_work_horses_reach_the_worker_endpoint(tmp_path: Path) -> None:
    """A worker process in multiprocess mode: what a forked child records is served by the parent."""
    script = textwrap.dedent("""
        import os, sys
        from observability import metrics
        directory = metrics.enable_multiprocess()
        assert directory is not None
        pid = os.fork()
        if pid == 0:
            metrics.record_job("postmortem", 2.0)
            metrics.record_verdict("node-failure", "component")
            os._exit(0)
        os.waitpid(pid, 0)
        sys.stdout.write(metrics.render()[0].decode())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, check=False)
    assert result.returncode == 0, result.stderr
    assert _value(result.stdout, "k8s_incident_bot_job_duration_seconds_count", kind="postmortem", outcome="ok") == 1
    assert _value(result.stdout, "k8s_incident_bot_assessment_verdicts_total", pattern="node-failure", scope="component") == 1


def test_unknown_paths_are_404_not_slack(bot_server: RunningBot) -> None:
    response = requests.get(f"{bot_server.url}/nope", timeout=5)
    assert response.status_code == 404 and response.json()["slack_endpoint"] == "/slack/events"


def test_a_real_worker_serves_job_durations_by_kind_and_logs_json_with_the_job_id(
        bot_settings: Settings, tmp_path: Path) -> None:
    from sandbox.ports import free_port
    from tests.fixtures.workers import WorkerProcesses, settings_environment

    port = free_port()
    env = {**settings_environment(bot_settings), "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port)}
    pool = WorkerProcesses(env, tmp_path)
    pool.start("--no-scheduler")
    try:
        job = get_queue(bot_settings, "postmortem").enqueue("builtins.print", "hello from a job")

        def scraped() -> str | None:
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except requests.ConnectionError:
                return None
            done = _value(text, "k8s_incident_bot_job_duration_seconds_count", kind="postmortem", outcome="ok") == 1
            return text if done else None

        wait_until(scraped, timeout=60)
    finally:
        pool.stop_all()
    records = [json.loads(line) for line in pool.log_text().splitlines() if line.startswith("{")]
    assert records, pool.log_text()
    assert any(record.get("request_id") == job.id for record in records), records
    assert bot_settings.slack_bot_token is not None
    assert bot_settings.slack_bot_token.get_secret_value() not in pool.log_text()
