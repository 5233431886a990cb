"""A real load balancer in front of several bot replicas: Debian's HAProxy on loopback, round-robin.

Slack delivers every request to one URL; in production that URL is an ingress or a Service spreading
requests over the bot's replicas, and taking a replica out of rotation while it restarts. This is that
part, small: ``balance roundrobin``, a readiness check (``/readyz``, as a Kubernetes Service follows the
readiness probe) every 200 ms, out of rotation after two failures — a stopping replica fails it at once
and keeps serving while it is taken out of rotation — and a retry on another replica when a connection
is refused (the request never reached that replica, so repeating it is safe). A request that reached a replica which then died is *not*
retried: the replica may have recorded it (the inbox replays it), and a retry would do it twice.
"""

from __future__ import annotations

import csv
import shutil
import socket
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
        servers = "\n".join(f"    server bot{i} 127.0.0.1:{port} check inter 200 fall 2 rise 2"
                            for i, port in enumerate(self.backend_ports))
        return f"""global
    log stdout format raw local0 warning
    stats socket {self.directory / "admin.sock"} mode 600 level user
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on conn-failure
frontend slack
    bind 127.0.0.1:{self.port}
    default_backend bots
backend bots
    balance roundrobin
    option httpchk GET /readyz?exclude=kubernetes
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

    def routes_to(self, port: int) -> bool:
        """Whether the backend on ``port`` is in rotation (its readiness check passes), from HAProxy's own stats."""
        index = self.backend_ports.index(port)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
            admin.connect(str(self.directory / "admin.sock"))
            admin.sendall(b"show stat\n")
            raw = b"".join(iter(lambda: admin.recv(65536), b""))
        rows = list(csv.reader(raw.decode().lstrip("# ").splitlines()))
        header = rows[0]
        for row in rows[1:]:
            if len(row) == len(header) and row[0] == "bots" and row[1] == f"bot{index}":
                return row[header.index("status")] == "UP"
        return False

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "HaproxyFront":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
