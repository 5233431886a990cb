"""A real Redis Sentinel set-up on loopback: one master, one replica, three sentinels (Debian's binaries).

What production runs for a highly available Redis, small: the master with AOF and
``min-replicas-to-write 1`` (it refuses writes while no replica is in sync, which bounds what an
asynchronous failover can lose), a replica, and three ``redis-sentinel`` processes with a quorum of two.
Failure detection is fast for tests (``down-after-milliseconds`` 1000). :meth:`SentinelGroup.kill_master`
SIGKILLs the master; :meth:`SentinelGroup.wait_for_failover` waits until the sentinels name the promoted
replica and it answers as master.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis

from sandbox.ports import free_port
from sandbox.processes import stop_process
from sandbox.redis_server import RedisServer, RedisServerError
from sandbox.waiting import poll

T = TypeVar("T")

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def _sentinel_binary() -> list[str]:
    binary = shutil.which("redis-sentinel")
    if binary:
        return [binary]
    server = shutil.which("redis-server")
    if server is None:
        raise RedisServerError("redis-sentinel is not installed; run `bash scripts/bootstrap.sh` (apt package redis-sentinel).")
    return [server]  # redis-server <conf> --sentinel is the same program


class Sentinel:
    """One ``redis-sentinel`` process watching :data:`MASTER_NAME`."""

    def __init__(self, directory: Path, master_port: int) -> None:
        self.port = free_port()
        self.directory = directory
        self.config = directory / "sentinel.conf"
        self.config.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", "daemonize no", f"dir {directory}",
            f"logfile {directory / 'sentinel.log'}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1", "",
        ]))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        args = [*_sentinel_binary(), str(self.config)]
        if not args[0].endswith("redis-sentinel"):
            args.append("--sentinel")
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RedisServerError(f"redis-sentinel exited with {self._process.returncode}: see {self.directory}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RedisServerError(f"redis-sentinel on {self.port} did not answer within {timeout} s")

    def master(self) -> tuple[str, int] | None:
        try:
            found = redis.Redis(port=self.port, socket_timeout=1).sentinel_get_master_addr_by_name(MASTER_NAME)
        except redis.RedisError:
            return None
        return (found[0], int(found[1])) if found else None

    def stop(self) -> None:
        if self._process is None:
            return
        stop_process(self._process)
        self._process = None


class SentinelGroup:
    """Master + replica + three sentinels, all on loopback, removed on exit."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="k8sbot-sentinel-"))
        (self.directory / "master").mkdir()
        (self.directory / "replica").mkdir()
        self.master = RedisServer(data_dir=self.directory / "master",
                                  extra_args=("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"))
        self.replica = RedisServer(data_dir=self.directory / "replica",
                                   extra_args=("--replicaof", "127.0.0.1", str(self.master.port)))
        self.sentinels: list[Sentinel] = []

    @property
    def addresses(self) -> list[str]:
        """``host:port`` of every sentinel (``REDIS_SENTINELS``)."""
        return [s.address for s in self.sentinels]

    def start(self, timeout: float = 30.0) -> "SentinelGroup":
        self.master.start()
        self.replica.start()
        self._wait("the replica in sync", lambda: self._replica_linked(self.master.port), timeout)
        for index in range(3):
            directory = self.directory / f"sentinel-{index}"
            directory.mkdir()
            sentinel = Sentinel(directory, self.master.port)
            sentinel.start()
            self.sentinels.append(sentinel)
        self._wait("the sentinels to see each other and the replica", self._sentinels_ready, timeout)
        return self

    def master_port(self) -> int | None:
        """The master's port as a majority of the sentinels name it."""
        votes = [s.master() for s in self.sentinels]
        ports = [found[1] for found in votes if found]
        best = max(set(ports), key=ports.count) if ports else None
        return best if best is not None and ports.count(best) >= 2 else None

    def kill_master(self) -> int:
        """SIGKILL the current master; returns its port."""
        port = self.master_port()
        for server in (self.master, self.replica):
            if server.port == port:
                server.stop(kill=True)
                return port
        raise RedisServerError(f"no managed server on the master port {port}")

    def wait_for_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until the sentinels name a new master that answers as master; returns its port."""
        def promoted() -> int | None:
            port = self.master_port()
            if port is None or port == old_port:
                return None
            try:
                role = redis.Redis(port=port, socket_timeout=1).info("replication").get("role")
            except redis.RedisError:
                return None
            return port if role == "master" else None

        return self._wait("a failover", promoted, timeout)

    def _replica_linked(self, master_port: int) -> bool:
        try:
            info = redis.Redis(port=master_port, socket_timeout=1).info("replication")
        except redis.RedisError:
            return False
        return int(info.get("connected_slaves", 0)) >= 1 and info.get("slave0", {}).get("state") == "online"

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            try:
                state = redis.Redis(port=sentinel.port, socket_timeout=1).sentinel_master(MASTER_NAME)
            except redis.RedisError:
                return False
            if int(state.get("num-other-sentinels", 0)) < 2 or int(state.get("num-slaves", 0)) < 1:
                return False
        return True

    @staticmethod
    def _wait(what: str, condition: Callable[[], T | None], timeout: float) -> T:
        return poll(condition, timeout, what, interval=0.1, error=RedisServerError)  # type: ignore[arg-type]

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.master.stop()
        self.replica.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "SentinelGroup":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
