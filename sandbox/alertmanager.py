"""A real Prometheus Alertmanager on loopback, with its webhook receiver pointing at the bot.

The binary is Alertmanager v0.35.0 built from the Go module proxy by :func:`sandbox.binaries.ensure_alertmanager`
(wrapper module ``sandbox/gotools/alertmanager``). :class:`LocalAlertmanager` writes a configuration
whose one route sends every group to a ``webhook_configs`` receiver at the bot's
``/alerts/alertmanager`` with ``http_config.authorization`` (a bearer token, read from a
``credentials_file`` as a mounted Secret would be) and ``send_resolved: true``; ``group_wait`` and
``group_interval`` are seconds instead of Alertmanager's 30 s / 5 min so tests see its real grouping
quickly. High availability (gossip) is off (``--cluster.listen-address=``). Its storage directory
(the notification log and silences) survives :meth:`LocalAlertmanager.restart`; alerts do not —
Alertmanager keeps them in memory and relies on Prometheus re-sending them, which is what
:meth:`LocalAlertmanager.post_alerts` plays (``POST /api/v2/alerts``, as Prometheus does; ``amtool
alert add`` is :meth:`LocalAlertmanager.amtool`).

Used by ``tests/fixtures/alertmanager.py``, ``bench/bench_alerts.py`` and the demo.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sandbox.binaries import ensure_alertmanager
from sandbox.ports import free_port
from sandbox.processes import ManagedProcess


class AlertmanagerError(RuntimeError):
    """Alertmanager did not start, or its API refused a request; the message carries its log's tail."""


@dataclass
class Routing:
    """The route's grouping and timing (Alertmanager's defaults are 30 s / 5 min / 4 h)."""

    group_by: Sequence[str] = ("alertname", "cluster")
    group_wait: str = "1s"
    group_interval: str = "2s"
    repeat_interval: str = "1h"
    max_alerts: int = 0
    """The receiver's ``max_alerts`` (0: every alert of the group in each notification)."""


@dataclass
class LocalAlertmanager:
    """One Alertmanager process owned by this object."""

    webhook_url: str
    token: str
    routing: Routing = field(default_factory=Routing)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="k8sbot-alertmanager-")))
    port: int = field(default_factory=free_port)
    _process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "alertmanager.yml"

    def config(self) -> dict[str, Any]:
        """The configuration written for the process (the README shows the same receiver)."""
        routing = self.routing
        return {
            "route": {"receiver": "k8s-incident-bot", "group_by": list(routing.group_by),
                      "group_wait": routing.group_wait, "group_interval": routing.group_interval,
                      "repeat_interval": routing.repeat_interval},
            "receivers": [{"name": "k8s-incident-bot", "webhook_configs": [{
                "url": self.webhook_url, "send_resolved": True, "max_alerts": routing.max_alerts,
                "http_config": {"authorization": {"type": "Bearer",
                                                  "credentials_file": str(self.workdir / "bot-token")}},
            }]}],
        }

    def start(self, timeout: float = 30.0) -> "LocalAlertmanager":
        """Write the configuration, start Alertmanager and wait until ``/-/ready`` answers."""
        binary = ensure_alertmanager() / "alertmanager"
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "bot-token").write_text(self.token)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self._process = ManagedProcess("alertmanager", [
            str(binary), f"--config.file={self.config_path}", f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=debug",
        ], self.workdir / "alertmanager.log").start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._process.running():
                raise AlertmanagerError(f"alertmanager exited ({self._process.describe()}):\n{self._process.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise AlertmanagerError(f"alertmanager not ready after {timeout} s:\n{self._process.tail()}")

    def stop(self) -> None:
        """SIGTERM (Alertmanager writes its notification log and silences on the way out)."""
        if self._process is not None:
            self._process.stop()

    def restart(self) -> None:
        """Stop and start on the same port and storage: its in-memory alerts are gone, its notification log is not."""
        self.stop()
        self.start()

    def log(self) -> str:
        return self.workdir.joinpath("alertmanager.log").read_text(errors="replace")

    # --- what Prometheus does -------------------------------------------------------------------------
    def post_alerts(self, alerts: Sequence[dict[str, Any]]) -> None:
        """``POST /api/v2/alerts`` (each: ``labels``, optional ``annotations``, ``startsAt``, ``endsAt``,
        ``generatorURL``), as Prometheus sends firing — or, with ``endsAt`` now, resolved — alerts."""
        body = json.dumps(list(alerts)).encode()
        request = urllib.request.Request(f"{self.url}/api/v2/alerts", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        except urllib.error.HTTPError as error:
            raise AlertmanagerError(f"POST /api/v2/alerts: {error.code} {error.read()[:500]!r}") from None

    def resolve_alerts(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Send the same alerts with ``endsAt`` now: Alertmanager resolves them."""
        now = _now()
        self.post_alerts([{**alert, "endsAt": now} for alert in alerts])

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: what Alertmanager holds now."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as answer:
            return list(json.loads(answer.read()))

    def amtool(self, *args: str) -> str:
        """Run the pinned ``amtool`` against this Alertmanager (``amtool("alert", "add", "alertname=X")``)."""
        binary = ensure_alertmanager() / "amtool"
        result = subprocess.run([str(binary), f"--alertmanager.url={self.url}", *args], capture_output=True,
                                text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise AlertmanagerError(f"amtool {' '.join(args)} failed: {result.stderr or result.stdout}")
        return result.stdout

    def notifications_sent(self) -> int:
        """Alertmanager's own count of webhook notifications attempted (its ``/metrics``)."""
        return self._webhook_metric("alertmanager_notifications_total")

    def notifications_failed(self) -> int:
        """Alertmanager's own count of webhook notifications that failed (it retries them)."""
        return self._webhook_metric("alertmanager_notifications_failed_total")

    def _webhook_metric(self, name: str) -> int:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and 'integration="webhook"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


def alert(name: str, *, severity: str = "critical", cluster: str = "prod", starts_at: str | None = None,
          summary: str = "", **labels: str) -> dict[str, Any]:
    """One alert as Prometheus posts it."""
    return {"labels": {"alertname": name, "severity": severity, "cluster": cluster, **labels},
            "annotations": {"summary": summary} if summary else {},
            "startsAt": starts_at or _now(), "generatorURL": f"http://prometheus.example/graph?g0.expr={name}"}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
