"""The embedded local default: everything the bot needs, on one machine, behind one URL.

:class:`DemoStack` starts a real Redis (AOF), the demo's clusters (:mod:`sandbox.demo.clusters`: by default
two local control planes with kwok nodes and a healthy kube-system baseline — ``prod-eu`` reached centrally,
``prod-us`` through its agent process — or, with ``clusters=1`` / ``DEMO_CLUSTERS=1``, the one cluster
``sandbox``), a fault proxy in front of each apiserver (so "control plane slow/unreachable" can be injected
into one cluster), the Slack emulator with a small workspace (a channel bound to each cluster) and the demo
page mounted on it with one scenario panel per cluster, an RQ worker with the scheduler and the production
bot — as separate processes running the real console script — and a real Alertmanager whose webhook receiver
is the bot (a panel fires its scenario's alerts through it with its cluster's label: critical ones open an
incident on that cluster, warnings go to triage in #alerts). The bot runs over HTTP (``serve``) or, with ``slack_mode="socket"``
(``DEMO_SLACK_MODE=socket make demo``), in Socket Mode (``socket``): the emulator then sends
everything over the WebSocket the bot opens, as Slack does for an app behind a firewall.
:meth:`DemoStack.start_drill` breaks a cluster and opens a drill incident whose post-mortem
carries a drill score.

Used by ``k8s-incident-bot demo`` / ``drill`` and by the browser test.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from kubernetes import client as k8s

from persistence.fleet import FleetStore
from persistence.keys import Keys
from sandbox.alertmanager import LocalAlertmanager
from sandbox.binaries import ensure_binaries
from sandbox.bot_process import wait_for_http
from sandbox.cluster import LocalCluster
from sandbox.ports import free_port
from sandbox.processes import ManagedProcess
from sandbox.proxy import FaultProxy
from sandbox.redis_server import RedisServer
from sandbox.demo.catalogue import SCENARIOS, ScenarioPanel
from sandbox.demo.clusters import (
    COUNT_VARIABLE, DEFAULT_COUNT, FLEET_CHANNEL, DemoCluster, count_from_environment, plans_for, registry_yaml,
)
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
AGENT_START_SECONDS = 60.0
"""How long the start waits for each agent's first heartbeat (a Python start and an RQ registration)."""


class DemoStack:
    """Redis + the demo's clusters + proxies + Slack emulator + worker (+ agents) + bot, started and stopped together."""

    def __init__(self, workdir: Path | None = None, *, nodes: int = 3, ui_port: int = 0,
                 slack_mode: str = "http", clusters: int = DEFAULT_COUNT) -> None:
        if slack_mode not in SLACK_MODES:
            raise ValueError(f"slack_mode must be one of {SLACK_MODES}, not {slack_mode!r}")
        plans = plans_for(clusters)
        self.slack_mode = slack_mode
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="k8sbot-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = nodes
        (self.workdir / "redis").mkdir(exist_ok=True)
        self.redis = RedisServer(data_dir=self.workdir / "redis")
        self.sites: list[DemoCluster] = [
            DemoCluster(plan, LocalCluster(node_prefix=plan.node_prefix), self.workdir / "clusters" / plan.name)
            for plan in plans]
        """The demo's clusters, the default (the registry's ``default``) first."""
        self.slack = SlackEmulator(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN, port=ui_port)
        self.panels: dict[str, ScenarioPanel] = {site.name: ScenarioPanel(self, site.name) for site in self.sites}
        """One scenario panel per cluster, by cluster name (the default first)."""
        self.page: DemoPage | None = None
        self.bot_port = free_port()
        self.alertmanager = LocalAlertmanager(webhook_url=f"http://127.0.0.1:{self.bot_port}/alerts/alertmanager",
                                              token=ALERTMANAGER_TOKEN, workdir=self.workdir / "alertmanager")
        """The demo's real Alertmanager (v0.35.0 from source), its receiver the bot: the panels' *Alerts* part."""
        self._processes: list[ManagedProcess] = []
        self.timings: dict[str, float] = {}

    # --- the clusters -----------------------------------------------------------------------------
    @property
    def multi(self) -> bool:
        """Whether the bot serves several clusters (a ``CLUSTERS_FILE``) rather than the implicit one."""
        return len(self.sites) > 1

    @property
    def default_cluster(self) -> str:
        return self.sites[0].name

    def site(self, name: str) -> DemoCluster:
        """The demo cluster called ``name``; :class:`KeyError` otherwise."""
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)

    @property
    def cluster(self) -> LocalCluster:
        """The default cluster's control plane (the only one with ``clusters=1``)."""
        return self.sites[0].plane

    @property
    def proxy(self) -> FaultProxy | None:
        """The fault proxy in front of the default cluster's apiserver."""
        return self.sites[0].proxy

    @property
    def panel(self) -> ScenarioPanel:
        """The default cluster's scenario panel."""
        return self.panels[self.default_cluster]

    def cluster_card(self, name: str) -> Mapping[str, str]:
        """What the page shows above a cluster's panel: its mode, what that means, its channel."""
        plan = self.site(name).plan
        return {"mode": plan.mode, "description": plan.description, "channel": plan.channel_id or "",
                "channel_name": plan.channel_name or ""}

    @property
    def clusters_file(self) -> Path:
        return self.workdir / "clusters.yaml"

    # --- start and stop ---------------------------------------------------------------------------
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
            kubectl = ensure_binaries() / "kubectl"
            for site in self.sites:  # one after the other: two cores, and PR_SET_PDEATHSIG needs the main thread
                suffix = f" {site.name}" if self.multi else ""
                self._timed(f"cluster{suffix}", lambda site=site: site.plane.start(nodes=self.nodes))
                self._timed(f"baseline{suffix}", lambda site=site: site.install(kubectl))
            if self.multi:
                self.clusters_file.write_text(registry_yaml(self.sites), encoding="utf-8")
                self._bind_channels()
            self._timed("slack emulator", self._start_slack)
            self._timed("bot and worker", self._start_bot_and_worker)
            if any(site.is_agent for site in self.sites):
                self._timed("agents", self._wait_for_agents)
            self._timed("alertmanager", self.alertmanager.start)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _bind_channels(self) -> None:
        """Each cluster's channel bound to it, as ``/k8s bind cluster <name>`` there would."""
        import redis as redis_lib

        client = redis_lib.Redis.from_url(self.redis.url)
        try:
            store = FleetStore(client, Keys())
            for site in self.sites:
                if site.plan.channel_id:
                    store.bind(site.plan.channel_id, site.name)
        finally:
            client.close()

    def _start_slack(self) -> None:
        for user_id, name in DEMO_PEOPLE.items():
            self.slack.add_user(user_id, name=name)
        self.slack.add_channel(STAKEHOLDER_CHANNEL, name="stakeholders", members=[self.slack.bot_user_id, *DEMO_PEOPLE])
        self.slack.add_channel("C_GENERAL", name="general", members=list(DEMO_PEOPLE))
        self.slack.add_channel(ALERTS_CHANNEL, name="alerts", members=[self.slack.bot_user_id, *DEMO_PEOPLE])
        for site in self.sites:
            if site.plan.channel_id and site.plan.channel_name:
                self.slack.add_channel(site.plan.channel_id, name=site.plan.channel_name,
                                       members=[self.slack.bot_user_id, *DEMO_PEOPLE])
        if self.multi:
            self.slack.add_channel(FLEET_CHANNEL[0], name=FLEET_CHANNEL[1], members=[self.slack.bot_user_id, *DEMO_PEOPLE])
        self.slack.add_usergroup(RESPONDERS, handle="responders", users=["U_SRE"])
        if self.slack_mode == "socket":
            self.slack.socket_mode = True
        else:
            self.slack.request_url = f"http://127.0.0.1:{self.bot_port}/slack/events"
        self.slack.start()
        self.page = DemoPage(self.slack, self, SCENARIOS)  # the Slack-like page and its scenario panels
        self.page.mount(self.slack.server)

    def bot_environment(self) -> dict[str, str]:
        """Settings of the bot and worker processes (the production code, configured for the sandbox)."""
        default = self.sites[0]
        assert default.kubeconfig is not None
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": self.slack.api_url,
            "SLACK_APP_TOKEN": self.slack.app_token,
            "STAKEHOLDER_CHANNEL": STAKEHOLDER_CHANNEL, "RESPONDER_USERGROUP": RESPONDERS,
            "ACTION_ALLOWED_USERS": ",".join(DEMO_PEOPLE), "REDIS_URL": self.redis.url,
            "KUBECONFIG": str(default.kubeconfig), "CLUSTER_NAME": default.name,
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.bot_port),
            "ASSESSMENT_BUDGET_SECONDS": "30", "KUBE_REQUEST_TIMEOUT_SECONDS": "10",
            "ALERTMANAGER_TOKEN": ALERTMANAGER_TOKEN, "ALERT_TRIAGE_CHANNEL": ALERTS_CHANNEL,
        }
        if self.multi:
            env["CLUSTERS_FILE"] = str(self.clusters_file)
        else:
            env.pop("CLUSTERS_FILE", None)
        return env

    def agent_environment(self, site: DemoCluster) -> dict[str, str]:
        """Settings of ``site``'s agent: Redis, its own ServiceAccount's kubeconfig, the registry; no Slack at all."""
        assert site.kubeconfig is not None
        bot = self.bot_environment()
        env = {key: value for key, value in bot.items() if not key.startswith(("SLACK_", "ALERTMANAGER_", "STAKEHOLDER_"))}
        env.update({"KUBECONFIG": str(site.kubeconfig), "CLUSTER_NAME": site.name, "HTTP_PORT": str(free_port())})
        return env

    def _start_bot_and_worker(self) -> None:
        env = self.bot_environment()
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "k8s_incident_bot"]
        # The worker serves its /metrics on HTTP_PORT too: give it its own port, or it takes the bot's.
        worker_env = {**env, "HTTP_PORT": str(free_port())}
        bot_command = "socket" if self.slack_mode == "socket" else "serve"
        started = [("worker", ["worker"], worker_env)]
        started += [(f"agent-{site.name}", ["agent", "--cluster", site.name], self.agent_environment(site))
                    for site in self.sites if site.is_agent]
        for name, args, process_env in (*started, ("bot", [bot_command], env)):
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

    def _wait_for_agents(self) -> None:
        """Until every agent has heartbeaten: ``/k8s clusters`` then shows it reachable from the first look."""
        import redis as redis_lib

        agents = {p.name.removeprefix("agent-"): p for p in self._processes if p.name.startswith("agent-")}
        client = redis_lib.Redis.from_url(self.redis.url)
        try:
            store, deadline = FleetStore(client, Keys()), time.monotonic() + AGENT_START_SECONDS
            waiting = set(agents)
            while waiting:
                waiting = {name for name in waiting if store.heartbeat(name) is None}
                for name in waiting:
                    if not agents[name].running():
                        raise RuntimeError(f"the agent of {name} exited:\n{agents[name].tail()}")
                if waiting and time.monotonic() > deadline:
                    raise RuntimeError(f"no heartbeat from the agent(s) of {', '.join(sorted(waiting))} within "
                                       f"{AGENT_START_SECONDS:.0f} s:\n" + "\n".join(agents[n].tail() for n in waiting))
                time.sleep(0.2)
        finally:
            client.close()

    def api(self) -> k8s.ApiClient:
        return self.cluster.api_client()

    def start_drill(self, key: str, user_id: str = DEMO_USER, cluster: str | None = None) -> str:
        """Break a cluster (the default one unless named) with a scenario and open a drill incident for it on
        that cluster; returns the scenario description."""
        spec = SCENARIOS[key]
        name = cluster or self.default_cluster
        description = self.panels[name].inject(key)
        on = f"--cluster {name} " if self.multi else ""
        self.slack.slash_command(user_id, "C_GENERAL", f"incident open {on}sev2 Drill: {spec.label.split(' (')[0]}")
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
        for panel in self.panels.values():
            panel.undo_all()
        self.alertmanager.stop()
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        self.slack.stop()
        for site in reversed(self.sites):
            site.stop()
        self.redis.cleanup()


def run_demo(drill: str | None = None, slack_mode: str | None = None, clusters: int | None = None) -> int:
    """``k8s-incident-bot demo``: start, print the URL, wait for Ctrl-C, stop cleanly.

    The bot's Slack transport is ``slack_mode``, else ``$DEMO_SLACK_MODE``, else HTTP; the number of
    clusters is ``clusters``, else ``$DEMO_CLUSTERS``, else two (``prod-eu`` central, ``prod-us`` agent).
    """
    import signal

    mode = slack_mode or os.environ.get(MODE_VARIABLE, "").strip().lower() or "http"
    if mode not in SLACK_MODES:
        print(f"{MODE_VARIABLE} must be one of {', '.join(SLACK_MODES)} (got {mode!r})", file=sys.stderr)
        return 2
    try:
        count = clusters if clusters is not None else count_from_environment()
        plans_for(count)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 2

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (or SIGINT ignored by a shell's `&`) stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    stack = DemoStack(slack_mode=mode, clusters=count)
    how = "in Socket Mode" if mode == "socket" else "over HTTP"
    planes = ("the local control plane" if count == 1 else
              " and ".join(f"{s.name} ({s.plan.mode})" for s in stack.sites) + f" (set {COUNT_VARIABLE}=1 for one)")
    print(f"Starting the sandbox: Redis, {planes}, Slack emulator, worker, bot ({how}) …", flush=True)
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
