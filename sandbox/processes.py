"""Child processes of the sandbox: own process group, log file, reliable cleanup.

Every :class:`ManagedProcess` runs in its own session (so a signal to the group reaches whatever it
spawned), writes stdout and stderr to one log file, and is remembered in a module registry that an
``atexit`` hook and a SIGTERM/SIGHUP hook (installed only where those signals still have their default
action) use to kill leftovers. Processes started from the main thread also get ``PR_SET_PDEATHSIG`` so
they die with the Python process even when it is killed outright. Used by :mod:`sandbox.cluster`.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

_LIVE: set["ManagedProcess"] = set()
_LIVE_LOCK = threading.Lock()
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()  # resolved in the parent: the child must not dlopen between fork and exec


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGKILL when the parent dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


class ManagedProcess:
    """One long-running program with its arguments, log file and process group."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> "ManagedProcess":
        """Launch the program, appending to its log file (a restart keeps the earlier output)."""
        if self.running():
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        in_main_thread = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent if in_main_thread and _prctl is not None else None,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        _install_signal_hooks()
        return self

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        """The exit status once the program has ended, ``None`` while it runs or before it started."""
        return None if self._process is None else self._process.poll()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds; idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # anything the program left behind in its group
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    def describe(self) -> str:
        """``running (pid N)``, ``exited with N`` or ``not started``."""
        if self._process is None:
            return "not started"
        code = self._process.poll()
        return f"running (pid {self._process.pid})" if code is None else f"exited with {code}"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """Kill every process still registered (atexit and signal paths)."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for process in leftovers:
        process.stop(timeout=3.0)


_hooks_installed = False


def _install_signal_hooks() -> None:
    global _hooks_installed
    if _hooks_installed or threading.current_thread() is not threading.main_thread():
        return
    _hooks_installed = True
    atexit.register(kill_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _make_handler(sig))


def _make_handler(sig: signal.Signals) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        kill_all()
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)

    return handler


def stop_process(process: "subprocess.Popen[bytes]", *, kill: bool = False, timeout: float = 10.0) -> int:
    """SIGTERM (or SIGKILL with ``kill``) a child and reap it; a child that ignores SIGTERM is killed after
    ``timeout``. Returns its exit code."""
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
