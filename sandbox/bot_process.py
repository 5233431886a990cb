"""The production bot as a child process of the test bed: start it, wait until it answers, stop or kill it.

Tests, benchmarks and the demo all run ``k8s-incident-bot serve`` (or ``socket``) as its own process and
need to know when it is up: :func:`wait_for_http` polls one of its probes and fails early, with the
log's tail, when the process died instead. :class:`BotProcess` is one replica on a fixed port that can
be stopped (SIGTERM, as Kubernetes does) or killed (SIGKILL) and started again on the same port.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

START_SECONDS = 30.0
"""How long a bot may take to answer its first probe (imports, Redis, the Bolt app)."""


class BotStartError(RuntimeError):
    """The bot process exited, or did not answer its probe in time."""


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_for_http(url: str, *, timeout: float = START_SECONDS, exited: Callable[[], bool] = lambda: False,
                  log_tail: Callable[[], str] = lambda: "") -> None:
    """Poll ``url`` until it answers 200; :class:`BotStartError` when ``exited()`` or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(url):
            return
        if exited():
            raise BotStartError(f"the bot exited before answering {url}:\n{log_tail()}")
        time.sleep(0.1)
    raise BotStartError(f"the bot did not answer {url} within {timeout:.0f} s:\n{log_tail()}")


class BotProcess:
    """One ``k8s-incident-bot <command>`` process on ``127.0.0.1:<port>`` (restartable on the same port)."""

    def __init__(self, env: dict[str, str], port: int, log: Path | None = None, *, command: str = "serve",
                 ready_path: str = "/healthz") -> None:
        self.env = {**env, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port)}
        self.port, self.log, self.command, self.ready_path = port, log, command, ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_codes: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_SECONDS) -> "BotProcess":
        out = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "k8s_incident_bot", self.command], env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log is not None:
                out.close()  # type: ignore[union-attr]
        process = self.process
        wait_for_http(self.url + self.ready_path, timeout=timeout, exited=lambda: process.poll() is not None,
                      log_tail=self.tail)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Send ``sig`` and reap the process (SIGKILL after ``timeout``); its exit code is kept."""
        if self.process is None:
            return None
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.exit_codes.append(code)
        self.process = None
        return code

    def tail(self, lines: int = 30) -> str:
        if self.log is None:
            return "(no log kept)"
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log written)"

    def __enter__(self) -> "BotProcess":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.alive():
            self.stop(signal.SIGTERM)
