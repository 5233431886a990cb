"""The embedded local default: everything the bot needs, on one machine, behind one URL.

:class:`DemoStack` starts a real Redis (AOF), the local control plane with kwok nodes and a healthy
kube-system baseline, a fault proxy in front of the apiserver (so "control plane slow/unreachable"
can be injected), the Slack emulator with a small workspace and the demo page mounted on it, an RQ
worker with the scheduler and the production bot — the last two as separate processes running the
real console script — and a real Alertmanager whose webhook receiver is the bot (the panel fires each
scenario's alerts through it: critical ones open an incident, warnings go to triage in #alerts). The bot runs over HTTP (``serve``) or, with ``slack_mode="socket"``
(``DEMO_SLACK_MODE=socket make demo``), in Socket Mode (``socket``): the emulator then sends
everything over the WebSocket the bot opens, as Slack does for an app behind a firewall.
:meth:`DemoStack.start_drill` breaks the cluster and opens a drill incident whose post-mortem
carries a drill score.

Used by ``k8s-incident-bot demo`` / ``drill`` and by the browser test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client as k8s

from sandbox.alertmanager import LocalAlertmanager
from sandbox.baseline import install_baseline
from sandbox.bot_process import wait_for_http
from sandbox.cluster import LocalCluster
from sandbox.ports import free_port
from sandbox.processes import ManagedProcess
from sandbox.proxy import FaultProxy
from sandbox.redis_server import RedisServer
from sandbox.demo.catalogue import SCENARIOS, ScenarioPanel
from sandbox.demo.page import DemoPage
from sandbox.slack import SlackEmulator

SIGNING_SECRET = "demo-signing-secret"
BOT_TOKEN = "xoxb-demo"
STAKEHOLDER_CHANNEL = "C_STAKEHOLDERS"
RESPONDERS = "S_RESPONDERS"
ALERTS_CHANNEL = "C_ALERTS"
"""Where alert groups the rules send to triage appear (``ALERT_TRIAGE_CHANNEL``)."""
ALERTMANAGER_TOKEN = "demo-alertmanager-token"
DEMO_USER = "U_ONCALL"
DEMO_PEOPLE = {"U_ONCALL": "oncall", "U_SRE": "sre-lead", "U_MANAGER": "eng-manager"}
SLACK_MODES = ("http", "socket")
MODE_VARIABLE = "DEMO_SLACK_MODE"
"""``make demo`` / ``k8s-incident-bot demo`` read the bot's Slack transport from here (``http`` default)."""
BOT_START_SECONDS = 30.0


class DemoStack:
    """Redis + control plane + proxy + Slack emulator + worker + bot, started and stopped together."""

    def __init__(self, workdir: Path | None = None, *, nodes: int = 3, ui_port: int = 0,
                 slack_mode: str = "http") -> None:
        if slack_mode not in SLACK_MODES:
            raise ValueError(f"slack_mode must be one of {SLACK_MODES}, not {slack_mode!r}")
        self.slack_mode = slack_mode
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="k8sbot-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = nodes
        (self.workdir / "redis").mkdir(exist_ok=True)
        self.redis = RedisServer(data_dir=self.workdir / "redis")
        self.cluster = LocalCluster()
        self.proxy: FaultProxy | None = None
        self.slack = SlackEmulator(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN, port=ui_port)
        self.panel = ScenarioPanel(self)
        self.page: DemoPage | None = None
        self.bot_port = free_port()
        self.alertmanager = LocalAlertmanager(webhook_url=f"http://127.0.0.1:{self.bot_port}/alerts/alertmanager",
                                              token=ALERTMANAGER_TOKEN, workdir=self.workdir / "alertmanager")
        """The demo's real Alertmanager (v0.35.0 from source), its receiver the bot: the panel's *Alerts* part."""
        self._processes: list[ManagedProcess] = []
        self.timings: dict[str, float] = {}

    @property
    def url(self) -> str:
        """The one URL a person opens: the emulator's Slack-like page."""
        return self.slack.base_url.rstrip("/") + "/ui/"

    def _timed(self, what: str, step: Callable[[], object]) -> None:
        started = time.monotonic()
        step()
        self.timings[what] = time.monotonic() - started

    def start(self) -> str:
        """Start everything; returns :attr:`url`."""
        try:
            self._timed("redis", self.redis.start)
            self._timed("cluster", lambda: self.cluster.start(nodes=self.nodes))
            self._timed("baseline", self._install_baseline)
            self.proxy = FaultProxy("127.0.0.1", int(self.cluster.server.rsplit(":", 1)[1])).start()
            self._timed("slack emulator", self._start_slack)
            self._timed("bot and worker", self._start_bot_and_worker)
            self._timed("alertmanager", self.alertmanager.start)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _install_baseline(self) -> None:
        api = self.cluster.api_client()
        try:
            install_baseline(api)
        finally:
            api.close()

    def _start_slack(self) -> None:
        for user_id, name in DEMO_PEOPLE.items():
            self.slack.add_user(user_id, name=name)
        self.slack.add_channel(STAKEHOLDER_CHANNEL, name="stakeholders", members=[self.slack.bot_user_id, *DEMO_PEOPLE])
        self.slack.add_channel("C_GENERAL", name="general", members=list(DEMO_PEOPLE))
        self.slack.add_channel(ALERTS_CHANNEL, name="alerts", members=[self.slack.bot_user_id, *DEMO_PEOPLE])
        self.slack.add_usergroup(RESPONDERS, handle="responders", users=["U_SRE"])
        if self.slack_mode == "socket":
            self.slack.socket_mode = True
        else:
            self.slack.request_url = f"http://127.0.0.1:{self.bot_port}/slack/events"
        self.slack.start()
        self.page = DemoPage(self.slack, self, SCENARIOS)  # the Slack-like page and its scenario panel
        self.page.mount(self.slack.server)

    def bot_environment(self) -> dict[str, str]:
        """Settings of the bot and worker processes (the production code, configured for the sandbox)."""
        assert self.proxy is not None
        kubeconfig = self.cluster.write_kubeconfig(self.workdir / "kubeconfig-via-proxy.yaml", server=self.proxy.url)
        return {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": self.slack.api_url,
            "SLACK_APP_TOKEN": self.slack.app_token,
            "STAKEHOLDER_CHANNEL": STAKEHOLDER_CHANNEL, "RESPONDER_USERGROUP": RESPONDERS,
            "ACTION_ALLOWED_USERS": ",".join(DEMO_PEOPLE), "REDIS_URL": self.redis.url, "KUBECONFIG": str(kubeconfig),
            "CLUSTER_NAME": "sandbox", "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.bot_port),
            "ASSESSMENT_BUDGET_SECONDS": "30", "KUBE_REQUEST_TIMEOUT_SECONDS": "10",
            "ALERTMANAGER_TOKEN": ALERTMANAGER_TOKEN, "ALERT_TRIAGE_CHANNEL": ALERTS_CHANNEL,
        }

    def _start_bot_and_worker(self) -> None:
        env = self.bot_environment()
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "k8s_incident_bot"]
        # The worker serves its /metrics on HTTP_PORT too: give it its own port, or it takes the bot's.
        worker_env = {**env, "HTTP_PORT": str(free_port())}
        bot_command = "socket" if self.slack_mode == "socket" else "serve"
        for name, args, process_env in (("worker", ["worker"], worker_env), ("bot", [bot_command], env)):
            process = ManagedProcess(name, command + args, logs / f"{name}.log", env=process_env).start()
            self._processes.append(process)
        deadline = time.monotonic() + BOT_START_SECONDS
        bot = self._processes[-1]
        wait_for_http(f"http://127.0.0.1:{self.bot_port}/healthz", timeout=BOT_START_SECONDS,
                      exited=lambda: not bot.running(), log_tail=bot.tail)
        if self.slack_mode == "socket":  # up is not enough: it must have opened its WebSocket
            try:
                self.slack.wait_for_socket_connections(1, max(1.0, deadline - time.monotonic()))
            except TimeoutError:
                raise RuntimeError(f"the bot did not connect over Socket Mode:\n{self._processes[-1].tail()}") from None

    def api(self) -> k8s.ApiClient:
        return self.cluster.api_client()

    def start_drill(self, key: str, user_id: str = DEMO_USER) -> str:
        """Break the cluster with a scenario and open a drill incident for it; returns the scenario description."""
        spec = SCENARIOS[key]
        description = self.panel.inject(key)
        self.slack.slash_command(user_id, "C_GENERAL", f"incident open sev2 Drill: {spec.label.split(' (')[0]}")
        import redis as redis_lib

        from persistence.store import IncidentStore

        store = IncidentStore(redis_lib.Redis.from_url(self.redis.url))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            incidents = [i for i in store.iter_all() if i.title.startswith("Drill:") and i.is_active]
            if incidents:
                store.timeline(incidents[-1].id).append("drill_started", user_id, {
                    "scenario": key, "expected_pattern": spec.expected_pattern, "description": description})
                return description
            time.sleep(0.2)
        raise RuntimeError("the drill incident did not open within 20 s; see the bot log")

    def stop(self) -> None:
        """Stop everything, newest first; safe to call twice."""
        self.panel.undo_all()
        self.alertmanager.stop()
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        self.slack.stop()
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        self.cluster.stop()
        self.redis.cleanup()


def run_demo(drill: str | None = None, slack_mode: str | None = None) -> int:
    """``k8s-incident-bot demo``: start, print the URL, wait for Ctrl-C, stop cleanly.

    The bot's Slack transport is ``slack_mode``, else ``$DEMO_SLACK_MODE``, else HTTP.
    """
    import signal

    mode = slack_mode or os.environ.get(MODE_VARIABLE, "").strip().lower() or "http"
    if mode not in SLACK_MODES:
        print(f"{MODE_VARIABLE} must be one of {', '.join(SLACK_MODES)} (got {mode!r})", file=sys.stderr)
        return 2

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (or SIGINT ignored by a shell's `&`) stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    stack = DemoStack(slack_mode=mode)
    how = "in Socket Mode" if mode == "socket" else "over HTTP"
    print(f"Starting the sandbox: Redis, control plane, Slack emulator, worker, bot ({how}) …", flush=True)
    try:
        url = stack.start()
        if drill:
            print(f"Drill: {stack.start_drill(drill)}", flush=True)
        steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in stack.timings.items())
        print(f"\nReady in {time.monotonic() - started:.1f} s ({steps}).\nOpen {url}\nCtrl-C stops everything.",
              flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nStopping …", flush=True)
    finally:
        stack.stop()
    return 0
