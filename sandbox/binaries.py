"""Build-or-reuse the local control plane's programs from source (etcd, Kubernetes, kwok, kubectl).

The wrapper Go module in ``sandbox/testbed/`` pins Kubernetes v1.36.3, etcd v3.6.8 and kwok v0.8.0;
this module runs ``go build`` on each of their main packages once and keeps the binaries under
``${K8S_INCIDENT_BOT_CACHE:-~/.cache/k8s-incident-bot}/v1.36.3/bin/``. A stamp file records what was
built from which ``go.mod``/``go.sum``, so a warm call only reads that file and returns in well under a
second. kwok's default Stage manifests (node heartbeats, pod lifecycle) are copied out of the kwok
module next to the binaries, since kwok itself only embeds them for ``kwokctl``.

``python -m sandbox.binaries`` is what ``scripts/bootstrap.sh`` calls; used by ``sandbox.cluster`` and
the pytest fixture through :func:`ensure_binaries`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
"""Kubernetes release the test bed runs; also the cache sub-directory name."""

TESTBED_DIR = Path(__file__).resolve().parent / "testbed"
"""The wrapper Go module (go.mod, go.sum, tools.go)."""

_KUBE_LDFLAGS = (
    f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
    "-X k8s.io/component-base/version.gitMajor=1",
    "-X k8s.io/component-base/version.gitMinor=36",
    "-X k8s.io/component-base/version.gitTreeState=clean",
)


@dataclass(frozen=True)
class Program:
    """One binary of the test bed: its file name, Go main package and extra linker flags."""

    name: str
    package: str
    ldflags: tuple[str, ...] = ()


PROGRAMS: tuple[Program, ...] = (
    Program("etcd", "go.etcd.io/etcd/server/v3"),
    Program("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", _KUBE_LDFLAGS),
    Program("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", _KUBE_LDFLAGS),
    Program("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", _KUBE_LDFLAGS),
    Program("kubectl", "k8s.io/kubernetes/cmd/kubectl", _KUBE_LDFLAGS),
    Program("kwok", "sigs.k8s.io/kwok/cmd/kwok"),
)

KWOK_MODULE = "sigs.k8s.io/kwok"
KWOK_STAGE_FILES: tuple[str, ...] = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
"""The Stages ``kwokctl`` gives kwok by default (node init + lease heartbeat, fast pod lifecycle)."""

KWOK_STAGES_NAME = "kwok-stages.yaml"
STAMP_NAME = ".stamp.json"

Reporter = Callable[[str], None]


class BinaryBuildError(RuntimeError):
    """The test bed's programs could not be built; the message carries Go's output and a hint."""


def cache_root() -> Path:
    """``$K8S_INCIDENT_BOT_CACHE`` or ``~/.cache/k8s-incident-bot``."""
    configured = os.environ.get("K8S_INCIDENT_BOT_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "k8s-incident-bot"


def bin_dir() -> Path:
    """Where the binaries of :data:`KUBERNETES_VERSION` live (they may not be built yet)."""
    return cache_root() / KUBERNETES_VERSION / "bin"


def kwok_stages_path(directory: Path | None = None) -> Path:
    """The multi-document YAML of kwok Stages written next to the binaries."""
    return (directory or bin_dir()) / KWOK_STAGES_NAME


def _recipe() -> dict[str, object]:
    """Everything that decides the build output; a change in any of it forces a rebuild."""
    files = {name: hashlib.sha256((TESTBED_DIR / name).read_bytes()).hexdigest() for name in ("go.mod", "go.sum")}
    return {
        "version": KUBERNETES_VERSION,
        "files": files,
        "programs": [[p.name, p.package, list(p.ldflags)] for p in PROGRAMS],
        "stages": list(KWOK_STAGE_FILES),
    }


def _is_current(directory: Path, recipe: dict[str, object]) -> bool:
    try:
        stamp = json.loads((directory / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    if stamp != recipe:
        return False
    wanted = [directory / p.name for p in PROGRAMS] + [kwok_stages_path(directory)]
    return all(path.is_file() for path in wanted)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    parallel = max(1, min(os.cpu_count() or 1, 4))
    env["GOFLAGS"] = f"-mod=readonly -p={parallel}"
    env.setdefault("CGO_ENABLED", "0")
    return env


def _go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinaryBuildError(
            "the `go` command is not on PATH; install Go >= 1.26.0 (go.mod of Kubernetes "
            f"{KUBERNETES_VERSION} says `go 1.26.0`) and run `python -m sandbox.binaries` again."
        )
    return go


def _run_go(args: list[str], what: str) -> str:
    result = subprocess.run(
        [_go_binary(), *args], cwd=TESTBED_DIR, env=_go_env(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        tail = "\n".join(output.splitlines()[-40:])
        raise BinaryBuildError(
            f"{what} failed (exit {result.returncode}) in {TESTBED_DIR}:\n  go {' '.join(args)}\n{tail}\n"
            "Hint: a network error means the Go module proxy was unreachable; a `go.sum` or `updates to go.mod"
            " needed` error means sandbox/testbed/go.mod was edited without `go mod tidy`."
        )
    return result.stdout


def _build_program(program: Program, out_dir: Path) -> None:
    ldflags = " ".join(("-s", "-w", *program.ldflags))
    target = out_dir / f".{program.name}.partial"
    _run_go(["build", "-trimpath", f"-ldflags={ldflags}", "-o", str(target), program.package], f"building {program.name}")
    target.replace(out_dir / program.name)


def _write_kwok_stages(out_dir: Path) -> None:
    module_dir = Path(_run_go(["list", "-m", "-f", "{{.Dir}}", KWOK_MODULE], "locating the kwok module").strip())
    documents = []
    for relative in KWOK_STAGE_FILES:
        source = module_dir / relative
        if not source.is_file():
            raise BinaryBuildError(f"kwok Stage manifest {source} is missing; the pinned kwok module changed layout.")
        documents.append(source.read_text().strip())
    target = kwok_stages_path(out_dir)
    partial = target.with_suffix(".partial")
    partial.write_text("\n---\n".join(documents) + "\n")
    partial.replace(target)


@contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """Serialize builds between processes (parallel test workers, a bootstrap running alongside)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_binaries(report: Reporter | None = None) -> Path:
    """Return the directory holding every test-bed binary, building what is missing or outdated.

    Warm (stamp matches ``go.mod``/``go.sum`` and the program list): only reads the stamp. Cold: runs
    ``go build`` once per program with Go's default module and build caches, which takes a long time
    on a small machine. Raises :class:`BinaryBuildError` carrying Go's error output on failure.
    """
    directory = bin_dir()
    recipe = _recipe()
    if _is_current(directory, recipe):
        return directory
    say: Reporter = report or (lambda message: None)
    with _build_lock(directory):
        if _is_current(directory, recipe):  # another process finished the build while we waited
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / STAMP_NAME).unlink(missing_ok=True)
        started = time.monotonic()
        for index, program in enumerate(PROGRAMS, start=1):
            say(f"building {program.name} ({index}/{len(PROGRAMS)}) from {program.package}")
            step = time.monotonic()
            _build_program(program, directory)
            say(f"built {program.name} in {time.monotonic() - step:.0f} s")
        _write_kwok_stages(directory)
        (directory / STAMP_NAME).write_text(json.dumps(recipe, indent=2, sort_keys=True))
        say(f"control-plane binaries ready in {directory} after {time.monotonic() - started:.0f} s")
    return directory


def main() -> int:
    """CLI: build or reuse the binaries; print progress to stderr, nothing when already built."""

    def report(message: str) -> None:
        print(f"[sandbox.binaries] {message}", file=sys.stderr, flush=True)

    try:
        ensure_binaries(report)
    except BinaryBuildError as error:
        print(f"[sandbox.binaries] {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
