"""Agent processes of the test bed: ``k8s-incident-bot agent --cluster X`` (the production command), each in its
own process group with a log file.

One starter for the fleet tests (``tests/fleet/conftest.py``, which builds each agent's environment from its
cluster's ServiceAccount kubeconfig) and the fleet benchmark (``bench/bench_fleet.py``): both start agents,
SIGKILL a cluster's agents together with their work horses (RQ gives a horse a process group of its own, so
killing the agent's group alone would leave a running assessment behind), and stop every agent at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

STOP_SECONDS = 20.0
"""How long a SIGTERMed agent may take to finish its job before it is SIGKILLed."""


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (a worker's or an agent's work horse, say); ``[]`` once it is gone."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def kill_with_horses(proc: subprocess.Popen[bytes], horses: list[int]) -> None:
    """SIGKILL a worker's (or an agent's) process group and its work horses' groups, and reap it."""
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in horses:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


def stop_groups(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM every process group (RQ's warm shutdown), SIGKILL those still running after ``timeout`` each."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class AgentPool:
    """The agent processes of some clusters, by cluster name; logs go to ``logs/agent-<cluster>-<n>.log``."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.starts = 0

    def start(self, cluster: str, env: dict[str, str], count: int = 1) -> list[subprocess.Popen[bytes]]:
        """``count`` agents of ``cluster``, each with exactly ``env`` as its environment."""
        return [self._start_one(cluster, env) for _ in range(count)]

    def _start_one(self, cluster: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = open(self.logs / f"agent-{cluster}-{self.starts}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", "agent", "--cluster", cluster], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()  # the child holds its own copy
        self.procs.setdefault(cluster, []).append(proc)
        return proc

    def kill(self, cluster: str) -> None:
        """SIGKILL every agent of ``cluster`` and their work horses."""
        for proc in self.procs.pop(cluster):
            kill_with_horses(proc, child_pids(proc.pid))

    def stop_all(self) -> None:
        """SIGTERM every agent, SIGKILL those still running after :data:`STOP_SECONDS`."""
        stop_groups([proc for group in self.procs.values() for proc in group], STOP_SECONDS)
        self.procs.clear()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("agent-*.log")))
