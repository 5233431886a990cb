"""A waitress server on its own thread stops from another thread without its loop failing.

waitress's own ``close()`` from another thread closed the sockets under the loop's ``select``, which ended the
loop thread with ``OSError: [Errno 9] Bad file descriptor`` now and then (seen as pytest's
``PytestUnhandledThreadExceptionWarning`` at a bot fixture's teardown; the window, between the loop listing
its sockets and calling ``select``, is too narrow to hit on demand). Here the loop closes its own sockets:
each way of stopping runs ten times, the loop thread must be gone and the port refusing when ``stop``
returns, and any exception in any thread fails the test.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bot.server import BackgroundServer
from sandbox.ports import free_port


def hello(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture()
def thread_failures() -> Iterator[list[threading.ExceptHookArgs]]:
    failures: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = failures.append
    try:
        yield failures
    finally:
        threading.excepthook = previous


@pytest.mark.parametrize("served", [False, True], ids=["idle", "after-a-request"])
def test_stop_from_another_thread_ends_the_loop_cleanly(
        served: bool, thread_failures: list[threading.ExceptHookArgs]) -> None:
    for _ in range(10):
        port = free_port()
        server = BackgroundServer(hello, host="127.0.0.1", port=port, threads=2, name="bg-test").start()
        if served:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                assert answer.read() == b"ok"
        server.stop()
        assert not server._thread.is_alive()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    assert [f"{f.thread.name if f.thread else '?'}: {f.exc_value!r}" for f in thread_failures] == []
