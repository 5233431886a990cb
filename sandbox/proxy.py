"""A loopback TCP proxy in front of the apiserver that injects latency and connection failures.

TLS passes through untouched (the apiserver certificate lists 127.0.0.1), so a kubeconfig pointing at
the proxy works like one pointing at the apiserver. Faults switch at runtime:

- ``set_latency(s)``: every chunk sent towards the apiserver waits ``s`` seconds first (slow control plane);
- ``refuse()``: the listening socket is closed, new connections get ECONNREFUSED (apiserver down);
- ``blackhole()``: connections are accepted and never answered (timeouts);
- ``drop()``: open connections are cut now, later ones work;
- ``heal()``: back to a plain pass-through.

The proxy runs an asyncio loop in one daemon thread, accepts at most ``max_connections`` at once and
stops everything on :meth:`FaultProxy.close` (also on leaving the ``with`` block). Used by
:mod:`sandbox.scenarios` and tests of the bot's behaviour when the control plane is slow or gone.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Literal

Mode = Literal["pass", "refuse", "blackhole"]
_CHUNK = 64 * 1024


class FaultProxy:
    """TCP pass-through from ``127.0.0.1:<port>`` to ``target_host:target_port`` with switchable faults."""

    def __init__(
        self, target_host: str, target_port: int, *, port: int = 0, max_connections: int = 256, connect_timeout: float = 5.0
    ) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.latency = 0.0
        self.mode: Mode = "pass"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``: the server URL for a kubeconfig that goes through the proxy."""
        return f"https://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "FaultProxy":
        """Start listening (on a free port unless one was given); returns once connections are accepted."""
        if self._thread is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fault-proxy-{self.target[1]}", daemon=True)
        self._thread.start()
        self._call(self._setup())
        return self

    def close(self) -> None:
        """Stop listening, cut every connection and end the thread; idempotent."""
        if self._loop is None or self._thread is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
            self._loop, self._thread = None, None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- faults ------------------------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every client-to-apiserver chunk by ``seconds`` (0 removes the delay)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0 seconds")
        self.latency = seconds

    def refuse(self) -> None:
        """Stop listening: new connections are refused; open ones are cut."""
        self.mode = "refuse"
        self._call(self._stop_listening())
        self.drop()

    def blackhole(self) -> None:
        """Accept connections but never forward or answer them; open ones are cut."""
        self.mode = "blackhole"
        self._call(self._listen())
        self.drop()

    def drop(self) -> None:
        """Cut every open connection now (clients see a reset or EOF)."""
        self._call(self._cancel_connections())

    def heal(self) -> None:
        """Plain pass-through again: no latency, listening, forwarding."""
        self.latency = 0.0
        self.mode = "pass"
        self._call(self._listen())

    def connection_count(self) -> int:
        """Connections currently open through the proxy."""
        return len(self._tasks)

    # -- internals (run on the proxy's loop) -------------------------------------------------------

    def _call(self, coroutine: object) -> None:
        if self._loop is None:
            raise RuntimeError("the proxy is not running; call start() first")
        future: Future[None] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        future.result(timeout=10)

    async def _setup(self) -> None:
        self._slots = asyncio.Semaphore(self.max_connections)
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _cancel_connections(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    async def _shutdown(self) -> None:
        await self._stop_listening()
        await self._cancel_connections()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and self._slots is not None
        if self._slots.locked():
            writer.close()  # bounded: over the limit, a connection is closed at once
            return
        self._tasks.add(task)  # type: ignore[arg-type]
        async with self._slots:
            try:
                await self._serve(reader, writer)
            except (asyncio.CancelledError, ConnectionError, OSError, asyncio.TimeoutError):
                pass
            finally:
                writer.close()
                self._tasks.discard(task)  # type: ignore[arg-type]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "blackhole":
            while await reader.read(_CHUNK):
                pass
            return
        upstream_reader, upstream_writer = await asyncio.wait_for(
            asyncio.open_connection(*self.target), timeout=self.connect_timeout
        )
        pumps = [
            asyncio.ensure_future(self._pump(reader, upstream_writer, delayed=True)),
            asyncio.ensure_future(self._pump(upstream_reader, writer, delayed=False)),
        ]
        try:
            done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
            if any(task.exception() for task in done):
                return  # one side failed: cut both (the finally blocks close the sockets)
            await asyncio.gather(*pending)
        finally:
            for task in pumps:
                task.cancel()
            upstream_writer.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, delayed: bool) -> None:
        while True:
            data = await source.read(_CHUNK)
            if not data:
                if sink.can_write_eof():
                    sink.write_eof()
                return
            if delayed and self.latency > 0:
                await asyncio.sleep(self.latency)
            if self.mode == "blackhole":
                continue
            sink.write(data)
            await sink.drain()
