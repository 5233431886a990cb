"""The image's file set runs without ``sandbox/``: checked in seconds, without building the image.

The Dockerfile copies only some packages (``COPY k8s_incident_bot ./k8s_incident_bot`` …). These
tests copy exactly that set into a temporary directory and run the console script's ``main`` from it in
a fresh interpreter in which ``import sandbox`` raises ``ModuleNotFoundError`` (a meta-path blocker, since
the development virtualenv's editable install would otherwise find the repository's sandbox): ``--help``,
``serve`` up to ``/healthz`` and ``worker`` up to ``/metrics``, each stopped by SIGTERM. A sandbox import
anywhere on those paths — at module level or inside a function — fails here before it fails an image build.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from tests.fixtures.image import copied_sources
from tests.fixtures.slack import BOT_TOKEN, SIGNING_SECRET, STAKEHOLDER_CHANNEL

REPO = Path(__file__).resolve().parents[2]

LAUNCHER = """
import importlib.abc, sys
class NoSandbox(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the image has no sandbox)", name=name)
        return None
sys.meta_path.insert(0, NoSandbox())
sys.path.insert(0, sys.argv.pop(1))
import k8s_incident_bot.cli as cli
assert cli.__file__.startswith(sys.path[0]), cli.__file__
sys.argv[0] = "k8s-incident-bot"
raise SystemExit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Dockerfile's COPY set (no sandbox/, no tests/), copied as the build context would hold it."""
    root = tmp_path_factory.mktemp("image-files")
    sources = copied_sources()
    assert "sandbox" not in sources and "k8s_incident_bot" in sources, sources
    for source in sources:
        path = REPO / source
        if path.is_dir():
            shutil.copytree(path, root / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, root / source)
    return root


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_", "KUBE", "HTTP_"))}
    env.pop("PYTHONPATH", None)
    env.update(settings)
    return env


def _run(image_files: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LAUNCHER, str(image_files), *args], capture_output=True, text=True,
                          timeout=60, env=env or _env(), cwd=image_files, check=False)


def _start(image_files: Path, log: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", LAUNCHER, str(image_files), *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=image_files, start_new_session=True)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before answering {url}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s:\n{log.read_text()}")


def _wait_idle_worker(redis_url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Until RQ reports the worker idle: RQ installs its SIGTERM handler only after it has logged
    "Listening on …" and started the scheduler, so a SIGTERM sent earlier kills the process (exit -15)."""
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode}:\n{log.read_text()}")
        if any(w.get_state() == "idle" for w in Worker.all(connection=connection)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no idle RQ worker within {timeout} s:\n{log.read_text()}")


def _terminate(proc: subprocess.Popen[bytes], log: Path) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise AssertionError(f"no exit within 30 s of SIGTERM:\n{log.read_text()}") from None
    assert code == 0, f"exit {code}:\n{log.read_text()}"
    assert "sandbox" not in log.read_text().lower(), log.read_text()


def test_the_blocker_really_blocks_the_sandbox(image_files: Path) -> None:
    result = subprocess.run([sys.executable, "-c", LAUNCHER.replace("import k8s_incident_bot.cli as cli", "import sandbox"),
                             str(image_files)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and "blocked: the image has no sandbox" in result.stderr, result.stderr


def test_help_and_check_config_run_from_the_image_files(image_files: Path) -> None:
    result = _run(image_files, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "socket", "worker", "assess", "postmortem", "demo", "drill"):
        assert command in result.stdout
    result = _run(image_files, "check-config", "--mode", "http")
    assert result.returncode == 2 and "SLACK_BOT_TOKEN" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_demo_and_drill_say_where_the_demo_runs(image_files: Path) -> None:
    for args in (("demo",), ("drill", "dns-cascade")):
        result = _run(image_files, *args)
        assert result.returncode == 1, result.stderr
        assert "the demo runs from a source checkout (`make demo`)" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_serve_and_worker_run_from_the_image_files(image_files: Path, redis_url: str, redis_server: RedisServer,
                                                   tmp_path: Path) -> None:
    with SlackEmulator(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN) as slack:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
        common = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.api_url,
                  "STAKEHOLDER_CHANNEL": STAKEHOLDER_CHANNEL, "REDIS_URL": redis_url, "KUBECONFIG": str(kubeconfig),
                  "HTTP_HOST": "127.0.0.1"}
        bot_port, worker_port = free_port(), free_port()
        bot = _start(image_files, tmp_path / "serve.log", "serve", env=_env(**common, HTTP_PORT=str(bot_port)))
        worker = _start(image_files, tmp_path / "worker.log", "worker", env=_env(**common, HTTP_PORT=str(worker_port)))
        try:
            _wait_http(f"http://127.0.0.1:{bot_port}/healthz", bot, tmp_path / "serve.log")
            _wait_http(f"http://127.0.0.1:{worker_port}/metrics", worker, tmp_path / "worker.log")
            _wait_idle_worker(redis_url, worker, tmp_path / "worker.log")
        finally:  # every process is stopped, even when one of them fails to stop cleanly
            failures = []
            for proc, log in ((bot, tmp_path / "serve.log"), (worker, tmp_path / "worker.log")):
                if proc.poll() is None:
                    try:
                        _terminate(proc, log)
                    except AssertionError as failure:
                        failures.append(failure)
            if failures:
                raise failures[0]
