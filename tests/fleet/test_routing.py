"""Which queue a job of which cluster goes to, which queues each process serves, and who may be an agent."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from incident.settings import Settings
from service import jobs
from workers.agent import agent_problems, beat_timing


@pytest.fixture()
def fleet_settings(tmp_path: Path, fake_kubeconfig: Path) -> Settings:
    path = tmp_path / "clusters.yaml"
    path.write_text(f"clusters:\n  - name: hub\n    kubeconfig: {fake_kubeconfig}\n  - name: edge\n    mode: agent\n")
    return Settings(_env_file=None, kubeconfig=fake_kubeconfig, clusters_file=path)  # type: ignore[call-arg]


def test_the_cluster_bound_jobs_are_the_ones_that_talk_to_a_cluster() -> None:
    bound = {spec.name for spec in jobs.CATALOGUE.values() if spec.cluster_bound}
    assert bound == {"assessment", "resolve", "action_prepare", "action_drain", "node_watch", "node_rebalance"}
    assert {jobs.CATALOGUE[name].queue for name in bound} == set(jobs.CLUSTER_QUEUE_KINDS)


def test_one_cluster_keeps_the_old_queue_names(fake_kubeconfig: Path) -> None:
    settings = Settings(_env_file=None, kubeconfig=fake_kubeconfig)  # type: ignore[call-arg]
    assert jobs.get_queue(settings, "assess", cluster="default").name == "k8sbot-assess"
    assert [q.name for q in jobs.all_queues(settings)] == [f"k8sbot-{kind}" for kind in jobs.QUEUE_KINDS]


def test_a_registry_routes_each_cluster_to_its_queues(fleet_settings: Settings) -> None:
    assert jobs.get_queue(fleet_settings, "assess", cluster="edge").name == "k8sbot-assess@edge"
    assert jobs.get_queue(fleet_settings, "schedule", cluster="edge").name == "k8sbot-schedule"  # not cluster-bound
    assert jobs.get_queue(fleet_settings, "actions").name == "k8sbot-actions"
    central = [q.name for q in jobs.all_queues(fleet_settings)]
    assert central == ["k8sbot-actions", "k8sbot-actions@hub", "k8sbot-assess@hub", "k8sbot-assess", "k8sbot-schedule",
                       "k8sbot-postmortem", "k8sbot-default"]  # the agent cluster's queues are its agent's
    assert [q.name for q in jobs.cluster_queues(fleet_settings, "edge")] == ["k8sbot-actions@edge", "k8sbot-assess@edge"]
    assert jobs.queue_kinds(fleet_settings)["k8sbot-assess@hub"] == "assess"


def test_who_may_be_an_agent(fleet_settings: Settings, fake_kubeconfig: Path) -> None:
    assert agent_problems(fleet_settings, "edge") == []
    assert "is central in CLUSTERS_FILE" in " ".join(agent_problems(fleet_settings, "hub"))
    assert "is not in CLUSTERS_FILE" in " ".join(agent_problems(fleet_settings, "prod"))
    assert "is not a cluster name" in " ".join(agent_problems(fleet_settings, "$(reboot)"))
    with_token = fleet_settings.model_copy(update={"slack_bot_token": SecretStr("xoxb-1")})
    assert "SLACK_BOT_TOKEN is set: an agent never holds Slack credentials" in " ".join(agent_problems(with_token, "edge"))
    alone = Settings(_env_file=None, kubeconfig=fake_kubeconfig)  # type: ignore[call-arg]
    assert agent_problems(alone, "anything-valid") == []  # no registry in the agent: it serves the one it is told


@pytest.mark.parametrize("window", [3, 6, 30, 300])
def test_an_agent_beats_at_least_three_times_a_window(window: int) -> None:
    worker_ttl, monitoring = beat_timing(window)
    idle_beat = max(1, worker_ttl - 15)  # RQ's dequeue timeout: one heartbeat per timeout while idle
    assert 3 * idle_beat <= window and 3 * monitoring <= window


def test_the_agent_command_refuses_a_slack_token(tmp_path: Path, fake_kubeconfig: Path, redis_url: str) -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(fake_kubeconfig), "REDIS_URL": redis_url,
           "SLACK_BOT_TOKEN": "xoxb-should-not-be-here"}
    result = subprocess.run([sys.executable, "-m", "k8s_incident_bot", "agent", "--cluster", "edge"], env=env,
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "SLACK_BOT_TOKEN is set: an agent never holds Slack credentials" in result.stderr
