"""The demo page in a real browser against the whole demo stack: what a newcomer does in five minutes.

A module-scoped :class:`sandbox.demo.DemoStack` runs Redis, the local control plane with kwok nodes,
the Slack emulator (serving the page), an RQ worker and the production bot as processes. Playwright
drives Debian's headless Chromium (``/usr/bin/chromium``, never a downloaded browser) through the
page: open an incident with ``/k8s``, inject the DNS cascade from the panel, click Assess and read
the verdict, click its recovery plan's first step and see the delta, post a status update through the modal,
cordon a node through the confirmation button,
undo the scenario, resolve, and open the post-mortem file. Nothing on the bot's side is faked: every
step waits for what the bot did through the Web API, and the cordon is checked on the cluster.

The walk-through runs once per Slack transport of the bot (``serve`` over HTTP, ``socket`` in Socket
Mode, as ``DEMO_SLACK_MODE`` picks for ``make demo``): the page is the same, but what reaches the bot,
how it acknowledges and how the modal's ``response_action`` comes back differ, and a demo mode nobody
has clicked through is a guess. The HTTP stack runs ``make demo``'s two clusters (``prod-eu`` central,
``prod-us`` through its agent; the walk-through works the default one, and one test breaks ``prod-us``
alone and reads the fleet's verdict matrix), the Socket Mode stack the single cluster of
``DEMO_CLUSTERS=1``, so both paths are clicked through without a third stack on two cores. Screenshots of every step go to ``test-artifacts/demo/<mode>/``
(gitignored). The page's JSON API is also tested without a cluster or a browser, against the real bot
app (``bot_server``) over both transports.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from playwright.sync_api import Locator, Page, expect, sync_playwright

from sandbox.demo import MODE_VARIABLE, SCENARIOS, DemoStack, run_demo
from sandbox.demo.clusters import COUNT_VARIABLE
from sandbox.demo.page import attach_page
from sandbox.slack import SlackEmulator
from sandbox.slack.model import File
from tests.fixtures.slack import RunningBot, both_transports

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "demo"
SCENARIO = "dns-cascade"
BOT_SECONDS = 60_000
"""How long (ms) to wait for the bot's work: the assessment budget is 30 s, jobs run on a real worker."""


@pytest.fixture(scope="module", params=[("http", 2), ("socket", 1)], ids=["http-2-clusters", "socket-1-cluster"])
def demo_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """The whole demo stack, started once per variant: the bot over HTTP with the default two clusters
    (``make demo``), and in Socket Mode with one (``DEMO_CLUSTERS=1``, the single-cluster path)."""
    mode, clusters = request.param
    stack = DemoStack(tmp_path_factory.mktemp(f"demo-{mode}"), slack_mode=mode, clusters=clusters)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture()
def page(demo_stack: DemoStack) -> Iterator[Page]:
    """A fresh headless Chromium profile on the demo page (1440×900)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed (/usr/bin/chromium); run `bash scripts/bootstrap.sh`")
    profile = tempfile.mkdtemp(prefix="k8sbot-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        try:
            tab = context.pages[0] if context.pages else context.new_page()
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(demo_stack.url)
            yield tab
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture()
def shot(page: Page, demo_stack: DemoStack) -> Iterator[Callable[[str], Path]]:
    """``shot(name)`` saves a full-window screenshot as a test artefact (one folder per mode)."""
    folder = ARTIFACTS / demo_stack.slack_mode
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    counter = iter(range(1, 100))

    def take(name: str) -> Path:
        path = folder / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path))
        return path

    yield take


def type_in_composer(page: Page, text: str) -> None:
    composer = page.get_by_test_id("composer")
    composer.fill(text)
    composer.press("Enter")


def bot_message(page: Page, text: str | re.Pattern[str]) -> Locator:
    """Messages (or ephemeral replies) in the open channel containing ``text``."""
    return page.get_by_test_id("messages").locator(
        '[data-testid="message"], [data-testid="ephemeral-message"]').filter(has_text=text)


def cluster_panel(page: Page, stack: DemoStack, cluster: str | None = None) -> Locator:
    """The scenario panel of ``cluster`` (default: the demo's default cluster), shown by clicking its tab."""
    name = cluster or stack.default_cluster
    page.get_by_test_id(f"cluster-tab-{name}").click()
    panel = page.get_by_test_id(f"cluster-{name}")
    expect(panel).to_be_visible()
    return panel


def open_incident_from_alerts(page: Page, panel: Locator, key: str, channel_part: str) -> None:
    """*Fire alerts* of ``key`` in ``panel``; the critical alert's incident channel (its name has ``channel_part``)
    appears and opens with the bot's "Opened from Alertmanager"."""
    panel.get_by_test_id(f"alerts-{key}").click()
    expect(panel.get_by_test_id(f"resolve-alerts-{key}")).to_be_enabled(timeout=BOT_SECONDS)
    channel = page.locator(f'[data-testid^="channel-inc-"][data-testid*="{channel_part}"]')
    expect(channel).to_have_count(1, timeout=BOT_SECONDS)
    channel.click()
    expect(bot_message(page, "Opened from Alertmanager").first).to_be_visible(timeout=BOT_SECONDS)


def a_kwok_node(stack: DemoStack) -> str:
    api = stack.cluster.api_client()
    try:
        nodes = k8s.CoreV1Api(api).list_node().items
    finally:
        api.close()
    assert nodes, "the demo cluster has no nodes"
    return str(sorted(n.metadata.name for n in nodes)[-1])


def node_unschedulable(stack: DemoStack, name: str) -> bool:
    api = stack.cluster.api_client()
    try:
        return bool(k8s.CoreV1Api(api).read_node(name).spec.unschedulable)
    finally:
        api.close()


@pytest.mark.cluster
@pytest.mark.timeout(480)
def test_two_clusters_one_broken_while_the_other_stays_healthy(demo_stack: DemoStack, page: Page) -> None:
    """``make demo``'s two clusters side by side: a panel each, ``/k8s clusters`` in #fleet lists both (the agent
    cluster's agent seen), the DNS cascade injected from the agent cluster's panel breaks that cluster only, and
    ``/k8s assess --cluster all`` posts the verdict matrix — one cluster failing, the other healthy. Its alerts
    carry its cluster label, so the incident Alertmanager opens is on that cluster.

    First in the module, so the central cluster is as the demo starts it; the walkthrough after it uses that one."""
    if not demo_stack.multi:
        pytest.skip("the single-cluster demo (DEMO_CLUSTERS=1) has one cluster")
    folder = ARTIFACTS / demo_stack.slack_mode / "clusters"
    folder.mkdir(parents=True, exist_ok=True)
    central, agent = demo_stack.sites
    assert (central.plan.mode, agent.plan.mode) == ("central", "agent")
    home = cluster_panel(page, demo_stack, central.name)
    expect(home).to_have_attribute("data-mode", "central")
    away = cluster_panel(page, demo_stack, agent.name)
    expect(away).to_have_attribute("data-mode", "agent")
    expect(home).to_be_hidden()  # one cluster's panel at a time; both tabs stay in sight with their state
    expect(page.get_by_test_id(f"channel-{central.name}")).to_be_visible()
    expect(page.get_by_test_id(f"channel-{agent.name}")).to_be_visible()

    # The fleet view: both clusters, the agent cluster reachable through its agent.
    page.get_by_test_id("channel-fleet").click()
    type_in_composer(page, "/k8s clusters")
    listing = bot_message(page, "Clusters")
    expect(listing.first).to_contain_text(re.compile(rf"{re.escape(central.name)}\s*· central"), timeout=BOT_SECONDS)
    expect(listing.first).to_contain_text(re.compile(rf"{re.escape(agent.name)}\s*· agent · agent seen"))
    page.screenshot(path=str(folder / "01-clusters.png"))

    # Break DNS in the agent cluster only.
    away.get_by_test_id(f"inject-{SCENARIO}").click()
    expect(away.get_by_test_id(f"scenario-{SCENARIO}")).to_have_attribute("data-active", "true", timeout=BOT_SECONDS)
    expect(home.get_by_test_id(f"scenario-{SCENARIO}")).to_have_attribute("data-active", "false")
    expect(page.get_by_test_id(f"cluster-state-{agent.name}")).to_have_text("1 broken")
    expect(page.get_by_test_id(f"cluster-state-{central.name}")).to_have_text("healthy")
    assert SCENARIO in demo_stack.panels[agent.name].active and not demo_stack.panels[central.name].active
    try:
        type_in_composer(page, "/k8s assess --cluster all")
        matrix = bot_message(page, "Fleet assessment")
        expect(matrix.first).to_be_visible(timeout=3 * BOT_SECONDS)
        page.screenshot(path=str(folder / "02-verdict-matrix.png"))
        (text,) = [m["text"] for m in demo_stack.slack.messages("C_FLEET") if "Fleet assessment" in m["text"]]
        lines = {line.split("*")[1]: line for line in text.splitlines() if line.count("*") >= 2 and " — " in line}
        assert "DNS cascade" in lines[agent.name] and ":rotating_light:" in lines[agent.name], text
        assert "No cluster-wide failure" in lines[central.name], text
        assert f"Only *{agent.name}* is failing" in text

        # Its alerts name their cluster: the critical one opens an incident on the agent cluster.
        open_incident_from_alerts(page, away, SCENARIO, "coredns")
        expect(page.get_by_test_id("channel-topic")).to_contain_text(f"cluster {agent.name}", timeout=BOT_SECONDS)
        page.screenshot(path=str(folder / "03-incident-on-the-agent-cluster.png"))
        away.get_by_test_id(f"resolve-alerts-{SCENARIO}").click()
        expect(away.get_by_test_id(f"alerts-{SCENARIO}")).to_be_enabled(timeout=BOT_SECONDS)
    finally:
        demo_stack.panels[agent.name].undo(SCENARIO)
    expect(page.get_by_test_id(f"cluster-state-{agent.name}")).to_have_text("healthy", timeout=BOT_SECONDS)


@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_incident_walkthrough_in_the_browser(demo_stack: DemoStack, page: Page, shot: Callable[[str], Path]) -> None:
    try:
        walk_through_an_incident(demo_stack, page, shot)
    except BaseException:
        shot("failure")
        print(f"bot log tail:\n{_tail(demo_stack.workdir / 'logs' / 'bot.log')}")
        print(f"worker log tail:\n{_tail(demo_stack.workdir / 'logs' / 'worker.log')}")
        raise


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def walk_through_an_incident(demo_stack: DemoStack, page: Page, shot: Callable[[str], Path]) -> None:
    expect(page.get_by_test_id("channel-general")).to_be_visible()
    panel = cluster_panel(page, demo_stack)
    expect(panel.get_by_test_id(f"scenario-{SCENARIO}")).to_be_visible()
    shot("page")

    # 1. Open an incident from the composer; the bot creates the channel, which appears in the list.
    type_in_composer(page, "/k8s incident open sev1 API down")
    channel = page.locator('[data-testid^="channel-inc-"][data-testid$="-api-down"]')
    expect(channel).to_have_count(1, timeout=BOT_SECONDS)
    shot("channel-appears")
    channel.click()
    header = bot_message(page, "SEV1: API down")
    expect(header).to_have_count(1, timeout=BOT_SECONDS)
    expect(page.get_by_test_id("channel-title")).to_contain_text("api-down")
    shot("incident-channel")

    # 2. Break the cluster from the panel: the DNS cascade.
    panel.get_by_test_id(f"inject-{SCENARIO}").click()
    expect(panel.get_by_test_id(f"scenario-{SCENARIO}")).to_have_attribute("data-active", "true", timeout=BOT_SECONDS)
    expect(page.get_by_test_id("job").first).to_have_attribute("data-state", "done")
    assert SCENARIO in demo_stack.panel.active
    shot("dns-cascade-injected")

    # 3. Assess from the header button; the verdict names the DNS cascade.
    header.get_by_role("button", name="Assess").click()
    pattern = SCENARIOS[SCENARIO].expected_pattern
    verdict = bot_message(page, re.compile(rf"Cluster-wide failure: {re.escape(pattern)}"))
    expect(verdict.first).to_be_visible(timeout=BOT_SECONDS)
    expect(verdict.first).to_contain_text("Recovery order")
    expect(verdict.first).to_contain_text("Recovery plan")
    shot("verdict-dns-cascade")

    # 3b. Its plan's primary step, restart CoreDNS, clicked and confirmed; the re-assessment shows the delta.
    step = verdict.first.locator('[data-testid="block-button"][data-action-id="recovery_step_1"]')
    expect(step).to_contain_text("restart deployment kube-system/coredns")
    step.click()
    confirm = page.locator('[data-testid="block-button"][data-action-id="risky_action_confirm"]')
    expect(confirm).to_have_count(1, timeout=BOT_SECONDS)
    confirm.click()
    expect(confirm).to_have_count(0, timeout=BOT_SECONDS)
    delta = bot_message(page, re.compile(r"Step 1 helped|After step 1 the cluster looks healthy"))
    expect(delta.first).to_be_visible(timeout=BOT_SECONDS)
    expect(delta.first).to_contain_text("cleared: DNS cascade")
    shot("delta-after-step")

    # 4. A status update through the modal the bot opens with views.open.
    header.get_by_role("button", name="Post update").click()
    modal = page.get_by_test_id("modal")
    expect(modal).to_be_visible(timeout=BOT_SECONDS)
    expect(page.get_by_test_id("modal-title")).to_have_text("Status update")
    modal.locator("textarea").fill("CoreDNS has no ready replicas; restoring it first, one change at a time.")
    shot("status-update-modal")
    page.get_by_test_id("modal-submit").click()
    expect(modal).to_be_hidden(timeout=BOT_SECONDS)
    expect(bot_message(page, "restoring it first").first).to_be_visible(timeout=BOT_SECONDS)

    # 5. Cordon a node: the bot dry-runs it and asks for confirmation with a button.
    node = a_kwok_node(demo_stack)
    type_in_composer(page, f"/k8s cordon node {node}")
    confirm = page.locator('[data-testid="block-button"][data-action-id="risky_action_confirm"]')
    expect(confirm).to_have_count(1, timeout=BOT_SECONDS)
    shot("cordon-confirmation")
    confirm.click()
    if page.get_by_test_id("confirm-dialog").is_visible():
        page.get_by_test_id("confirm-ok").click()
    expect(confirm).to_have_count(0, timeout=BOT_SECONDS)
    expect(bot_message(page, re.compile(rf"cordon node {re.escape(node)}.*succeeded", re.I | re.S)).first).to_be_visible(
        timeout=BOT_SECONDS)
    assert node_unschedulable(demo_stack, node)
    shot("cordon-succeeded")

    # 6. Undo the scenario from the panel, then resolve from the header button.
    panel.get_by_test_id(f"undo-{SCENARIO}").click()
    expect(panel.get_by_test_id(f"scenario-{SCENARIO}")).to_have_attribute("data-active", "false", timeout=BOT_SECONDS)
    assert SCENARIO not in demo_stack.panel.active
    # The bot validates recovery first (a validation assessment against the runbook's checklist). The
    # injection's Warning events stay in its 10-minute window, so it normally refuses and lists what
    # fails; the commander then resolves with a recorded reason, as the refusal tells them to.
    header.get_by_role("button", name="Resolve").click()
    topic = page.get_by_test_id("channel-topic")
    refusal = bot_message(page, "Not resolving yet")
    expect(topic.filter(has_text="resolved").or_(refusal.first)).to_be_visible(timeout=BOT_SECONDS)
    if refusal.count():
        expect(refusal.first).to_contain_text("recovery checklist")
        shot("resolve-refused-checklist")
        type_in_composer(page, "/k8s resolve --override DNS restored; Warning events are from the injected outage")
        expect(bot_message(page, "Resolving despite the checklist").first).to_be_visible(timeout=BOT_SECONDS)
    expect(topic).to_contain_text("resolved", timeout=BOT_SECONDS)
    shot("resolved")

    # 7. The post-mortem draft arrives as a Markdown file and opens in the viewer.
    postmortem = page.get_by_test_id("messages").get_by_test_id("file")
    expect(postmortem).to_have_count(1, timeout=BOT_SECONDS)
    postmortem.click()
    content = page.get_by_test_id("file-content")
    expect(content).to_contain_text("Post-mortem")
    expect(content).to_contain_text(pattern)
    shot("postmortem")
    files = [f for f in demo_stack.slack.files if f.completed]
    assert [f.filename.endswith(".md") for f in files] == [True]


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_the_alerts_part_fires_a_scenarios_alerts_through_alertmanager(demo_stack: DemoStack, page: Page) -> None:
    """*Fire alerts* of the node failure: Alertmanager groups them and sends them to the bot, the critical
    one (KubeletDown) opens an incident by itself, the warning waits in #alerts for triage; *Dismiss* there."""
    folder = ARTIFACTS / demo_stack.slack_mode / "alerts"
    folder.mkdir(parents=True, exist_ok=True)
    key = "node-failure"
    panel = cluster_panel(page, demo_stack)
    open_incident_from_alerts(page, panel, key, "kubeletdown")
    page.screenshot(path=str(folder / "01-incident-from-alert.png"))
    page.get_by_test_id("channel-alerts").click()
    triage = bot_message(page, "KubeNodeNotReady")
    expect(triage.first).to_be_visible(timeout=BOT_SECONDS)
    expect(triage.first.get_by_role("button", name="Attach to an open incident…")).to_be_visible()
    page.screenshot(path=str(folder / "02-triage.png"))
    triage.first.get_by_role("button", name="Dismiss").click()
    expect(bot_message(page, "Dismissed by").first).to_be_visible(timeout=BOT_SECONDS)
    panel.get_by_test_id(f"resolve-alerts-{key}").click()
    expect(panel.get_by_test_id(f"alerts-{key}")).to_be_enabled(timeout=BOT_SECONDS)
    assert key not in demo_stack.panel.alerting
    page.screenshot(path=str(folder / "03-dismissed-and-resolved.png"))


# --- the page's JSON API, without a browser or a cluster -------------------------------------------------
def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _post(slack: SlackEmulator, route: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(f"{slack.base_url}ui/api/{route}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _state(slack: SlackEmulator, user: str, channel: str = "") -> dict[str, object]:
    status, body = _get(f"{slack.base_url}ui/api/state?user={user}&channel={channel}")
    assert status == 200
    return dict(json.loads(body))


def test_page_and_static_files_are_served_and_nothing_outside_them(slack: SlackEmulator) -> None:
    attach_page(slack)
    status, page = _get(f"{slack.base_url}ui/")
    assert status == 200 and b'data-testid="composer"' in page
    assert _get(f"{slack.base_url}ui/app.js")[0] == 200
    connection = http.client.HTTPConnection("127.0.0.1", int(slack.base_url.rsplit(":", 1)[1].strip("/")), timeout=5)
    connection.request("GET", "/ui/../../emulator.py")
    assert connection.getresponse().status == 404
    connection.close()
    state = _state(slack, "U_DAVE")
    assert {c["name"] for c in state["channels"]} >= {"stakeholders"}  # type: ignore[union-attr, index]
    assert state["panel"] is False and state["scenarios"] == []


def test_bad_requests_say_what_is_missing(slack: SlackEmulator) -> None:
    attach_page(slack)
    status, body = _post(slack, "command", {"channel": "C_STAKE", "text": "help"})
    assert (status, body["error"]) == (400, "user is required")
    status, body = _post(slack, "scenario", {"op": "inject", "key": "dns-cascade"})
    assert status == 400 and "without the demo stack" in str(body["error"])
    status, body = _post(slack, "click", {"user": "U_DAVE", "channel": "C_STAKE", "ts": "1.000001", "action_id": "x"})
    assert status == 400 and "no message" in str(body["error"])


class _FakePanel:
    """A scenario panel that records what it was asked to do (the page's API only routes to it)."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.active: dict[str, object] = {}
        self.alerting: dict[str, object] = {}
        self.done: list[str] = []

    def inject(self, key: str) -> str:
        self.active[key] = object()
        self.done.append(f"inject {key}")
        return f"injected {key} on {self.cluster}"

    def undo(self, key: str) -> str:
        self.active.pop(key, None)
        return f"undone {key}"

    def fire_alerts(self, key: str) -> str:
        return f"fired {key}"

    def resolve_alerts(self, key: str) -> str:
        return f"resolved {key}"


class _FakeStack:
    def __init__(self, *names: str) -> None:
        self.panels = {name: _FakePanel(name) for name in names}

    def cluster_card(self, name: str) -> dict[str, str]:
        return {"mode": "agent" if name.endswith("us") else "central", "description": f"{name} for the test",
                "channel": "", "channel_name": name}

    def start_drill(self, key: str, user_id: str, cluster: str | None = None) -> str:
        return f"drill {key} on {cluster}"


def test_each_cluster_has_its_panel_and_a_scenario_goes_to_the_one_named(slack: SlackEmulator) -> None:
    stack = _FakeStack("prod-eu", "prod-us")
    page = attach_page(slack, stack, SCENARIOS)  # type: ignore[arg-type]
    state = _state(slack, "U_DAVE")
    clusters = state["clusters"]
    assert [(c["name"], c["mode"]) for c in clusters] == [("prod-eu", "central"), ("prod-us", "agent")]  # type: ignore[union-attr, index]
    assert [s["key"] for s in clusters[1]["scenarios"]] == list(SCENARIOS)  # type: ignore[index]
    assert state["scenarios"] == clusters[0]["scenarios"]  # type: ignore[index]

    status, body = _post(slack, "scenario", {"op": "inject", "key": SCENARIO, "user": "U_DAVE", "cluster": "prod-us"})
    assert status == 200 and "on prod-us" in str(body["job"]["title"])  # type: ignore[index]
    deadline = time.monotonic() + 10
    while page.jobs.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.panels["prod-us"].done == [f"inject {SCENARIO}"] and stack.panels["prod-eu"].done == []
    clusters = _state(slack, "U_DAVE")["clusters"]
    assert [[s["active"] for s in c["scenarios"] if s["key"] == SCENARIO] for c in clusters] == [[False], [True]]  # type: ignore[union-attr, index]

    status, body = _post(slack, "scenario", {"op": "inject", "key": SCENARIO, "user": "U_DAVE", "cluster": "prod-xx"})
    assert status == 400 and "unknown cluster 'prod-xx'" in str(body["error"])
    assert stack.panels["prod-eu"].done == []


def test_uploaded_files_are_readable_from_the_page(slack: SlackEmulator) -> None:
    attach_page(slack)
    with slack.workspace.lock:
        slack.workspace.files["F_PM"] = File("F_PM", "postmortem.md", 12, "U_BOT", 0, "key", content=b"# Post-mortem",
                                             completed=True, channel="C_STAKE")
    assert _get(f"{slack.base_url}ui/api/files/F_PM") == (200, b"# Post-mortem")
    assert _get(f"{slack.base_url}ui/api/files/F_NONE")[0] == 404


@both_transports
def test_commands_buttons_and_modals_reach_the_real_bot(slack: SlackEmulator, bot_server: RunningBot) -> None:
    attach_page(slack)
    status, body = _post(slack, "command", {"user": "U_ALICE", "channel": "C_STAKE", "text": "incident open sev2 Disk full"})
    assert status == 200 and body["status"] == 200 and body["problem"] is None
    # The channel is listed as soon as the bot created it; the bot posts the header several calls later.
    deadline = time.monotonic() + 15
    channel = header = None
    while header is None and time.monotonic() < deadline:
        channels = _state(slack, "U_ALICE")["channels"]
        channel = next((c for c in channels if str(c["name"]).endswith("-disk-full")), None)  # type: ignore[union-attr]
        if channel is not None:
            messages = _state(slack, "U_ALICE", str(channel["id"]))["messages"]
            header = next((m for m in messages  # type: ignore[union-attr]
                           if m.get("blocks") and "Disk full" in json.dumps(m["blocks"])), None)
        time.sleep(0.1)
    assert channel is not None, "the bot did not create the incident channel"
    assert header is not None, "the bot did not post the incident header"

    status, body = _post(slack, "click", {"user": "U_ALICE", "channel": channel["id"], "ts": header["ts"],
                                          "action_id": "incident_post_update"})
    assert status == 200 and body["status"] == 200
    # The bot opens the modal (views.open) after acknowledging the click.
    deadline = time.monotonic() + 15
    views = []
    while not views and time.monotonic() < deadline:
        views = _state(slack, "U_ALICE", str(channel["id"]))["views"]  # type: ignore[assignment]
        time.sleep(0.1)
    assert len(views) == 1  # type: ignore[arg-type]
    view = views[0]  # type: ignore[index]
    status, body = _post(slack, "submit", {"user": "U_ALICE", "view_id": view["id"],
                                           "values": {"update": {"text": "Disk freed on the nodes."}}})
    assert status == 200 and body["closed"] is True
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        texts = json.dumps(_state(slack, "U_ALICE", str(channel["id"]))["messages"])
        if "Disk freed on the nodes." in texts:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the status update from the modal never reached the channel")


def test_the_demo_mode_setting_is_checked_before_anything_starts(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(MODE_VARIABLE, "carrier-pigeon")
    assert run_demo() == 2
    assert "DEMO_SLACK_MODE must be one of http, socket" in capsys.readouterr().err
    with pytest.raises(ValueError):
        DemoStack(slack_mode="carrier-pigeon")


def test_the_demo_cluster_count_is_checked_before_anything_starts(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(COUNT_VARIABLE, "three")
    assert run_demo() == 2
    assert "DEMO_CLUSTERS must be 1 or 2 (got 'three')" in capsys.readouterr().err
    with pytest.raises(ValueError, match="1 or 2 cluster"):
        DemoStack(clusters=3)
