"""A real ``redis-server`` process on a loopback port, with AOF persistence, for tests and the demo.

The deployment runs Redis with ``appendonly yes``; so does this, so restart tests exercise the
same durability. ``restart()`` keeps the data directory and port, like a production restart.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis

from sandbox.ports import free_port
from sandbox.processes import stop_process


class RedisServerError(RuntimeError):
    """redis-server could not be found or did not start."""


class RedisServer:
    """One redis-server process owned by this object."""

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None, appendonly: bool = True,
                 extra_args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        """More ``redis-server`` options, e.g. ``("--replicaof", "127.0.0.1", "6379")``."""
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="k8sbot-redis-"))
        self.appendonly = appendonly
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        """Start the server and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server is not installed; run `bash scripts/bootstrap.sh` (apt package redis-server).")
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            *self.extra_args,
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RedisServerError(f"redis-server exited with {self._process.returncode}:\n{self._log_tail()}")
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RedisServerError(f"redis-server did not answer within {timeout} s:\n{self._log_tail()}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM, so AOF is flushed; SIGKILL with ``kill``)."""
        if self._process is None:
            return
        stop_process(self._process, kill=kill)
        self._process = None

    def restart(self) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and remove the data directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.cleanup()
