"""A real load balancer in front of several bot replicas: Debian's HAProxy on loopback, round-robin.

Slack delivers every request to one URL; in production that URL is an ingress or a Service spreading
requests over the bot's replicas, and taking a replica out of rotation while it restarts. This is that
part, small: ``balance roundrobin``, a health check on ``/healthz`` every 200 ms (a stopping replica is
out of rotation within a few hundred milliseconds), and a retry on another replica when a connection is
refused (the request never reached the stopped one, so repeating it is safe).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from sandbox.ports import free_port
from sandbox.processes import stop_process


class FrontError(RuntimeError):
    """HAProxy is missing or did not start."""


class HaproxyFront:
    """HAProxy round-robin over ``127.0.0.1:<port>`` backends; :attr:`url` is what Slack is given."""

    def __init__(self, backend_ports: Sequence[int]) -> None:
        self.backend_ports = list(backend_ports)
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="k8sbot-front-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> str:
        servers = "\n".join(f"    server bot{i} 127.0.0.1:{port} check inter 200 fall 1 rise 2"
                            for i, port in enumerate(self.backend_ports))
        return f"""global
    log stdout format raw local0 warning
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on conn-failure empty-response
frontend slack
    bind 127.0.0.1:{self.port}
    default_backend bots
backend bots
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""

    def start(self, timeout: float = 10.0) -> "HaproxyFront":
        binary = shutil.which("haproxy")
        if binary is None:
            raise FrontError("haproxy is not installed; run `bash scripts/bootstrap.sh` (apt package haproxy).")
        config = self.directory / "haproxy.cfg"
        config.write_text(self._config())
        check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise FrontError(f"haproxy refused its config: {check.stdout}{check.stderr}")
        log = open(self.directory / "haproxy.log", "wb")  # noqa: SIM115 - closed with the process
        self._process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise FrontError(f"haproxy exited: {(self.directory / 'haproxy.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.1)
        raise FrontError(f"haproxy did not answer on {self.port} within {timeout} s")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "HaproxyFront":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
