"""Build-or-reuse the Go programs of the test bed from source: the control plane and helm.

The wrapper Go module in ``sandbox/testbed/`` pins Kubernetes v1.36.3, etcd v3.6.8 and kwok v0.8.0;
this module runs ``go build`` on each of their main packages once and keeps the binaries under
``${K8S_INCIDENT_BOT_CACHE:-~/.cache/k8s-incident-bot}/v1.36.3/bin/``. A stamp file records what was
built from which ``go.mod``/``go.sum``, so a warm call only reads that file and returns in well under a
second. kwok's default Stage manifests (node heartbeats, pod lifecycle) are copied out of the kwok
module next to the binaries, since kwok itself only embeds them for ``kwokctl``.

The same recipe builds ``helm`` (:func:`ensure_helm`) from its own wrapper module in
``sandbox/gotools/helm/`` into ``<cache>/helm-v4.3.1/bin/``: a separate module because helm v4.3.1 needs
the ``k8s.io`` v0.37 libraries while the control plane is v0.36.3, and one graph cannot hold both.

``python -m sandbox.binaries`` is what ``scripts/bootstrap.sh`` calls (``--helm`` adds helm); used by
``sandbox.cluster`` and the pytest fixtures through :func:`ensure_binaries` and :func:`ensure_helm`.
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

HELM_VERSION = "v4.3.1"
"""helm release the deployment tests use (``go.mod`` of ``sandbox/gotools/helm`` pins the same)."""

HELM_DIR = Path(__file__).resolve().parent / "gotools" / "helm"
"""The wrapper Go module of helm (go.mod, go.sum, tools.go)."""

HELM_PROGRAMS: tuple[Program, ...] = (
    Program("helm", "helm.sh/helm/v4/cmd/helm", (
        f"-X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
        "-X helm.sh/helm/v4/internal/version.gitTreeState=clean",
    )),
)

ALERTMANAGER_VERSION = "v0.35.0"
"""Alertmanager release the alert-intake tests use (``go.mod`` of ``sandbox/gotools/alertmanager`` pins the same)."""

ALERTMANAGER_DIR = Path(__file__).resolve().parent / "gotools" / "alertmanager"
"""The wrapper Go module of Alertmanager and amtool (go.mod, go.sum, tools.go)."""

_PROMETHEUS_LDFLAGS = (
    f"-X github.com/prometheus/common/version.Version={ALERTMANAGER_VERSION.lstrip('v')}",
    "-X github.com/prometheus/common/version.Branch=HEAD",
)

ALERTMANAGER_PROGRAMS: tuple[Program, ...] = (
    Program("alertmanager", "github.com/prometheus/alertmanager/cmd/alertmanager", _PROMETHEUS_LDFLAGS),
    Program("amtool", "github.com/prometheus/alertmanager/cmd/amtool", _PROMETHEUS_LDFLAGS),
)

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


@dataclass(frozen=True)
class GoBuild:
    """One wrapper module and the programs built from it into ``<cache>/<key>/bin``.

    ``extra`` names a step run after the programs (kwok's Stage files) or, for ``"ui-stub"``, before them
    (Alertmanager's web UI, see :func:`_vendor_with_ui_stub`); it is part of the stamp so a change of it
    rebuilds. The control plane's stamp keeps the exact shape it always had, so caches
    made before helm joined stay valid.
    """

    key: str
    module_dir: Path
    programs: tuple[Program, ...]
    extra: str | None = None

    def bin_dir(self) -> Path:
        return cache_root() / self.key / "bin"

    def recipe(self) -> dict[str, object]:
        """Everything that decides the build output; a change in any of it forces a rebuild."""
        files = {name: hashlib.sha256((self.module_dir / name).read_bytes()).hexdigest() for name in ("go.mod", "go.sum")}
        recipe: dict[str, object] = {
            "version": self.key,
            "files": files,
            "programs": [[p.name, p.package, list(p.ldflags)] for p in self.programs],
        }
        if self.extra == "kwok-stages":
            recipe["stages"] = list(KWOK_STAGE_FILES)
        if self.extra == "ui-stub":
            recipe["ui_stub"] = [ALERTMANAGER_UI_DIST, ALERTMANAGER_UI_STUB]
        return recipe

    def outputs(self, directory: Path) -> list[Path]:
        wanted = [directory / p.name for p in self.programs]
        if self.extra == "kwok-stages":
            wanted.append(kwok_stages_path(directory))
        return wanted


CONTROL_PLANE = GoBuild(KUBERNETES_VERSION, TESTBED_DIR, PROGRAMS, extra="kwok-stages")
HELM = GoBuild(f"helm-{HELM_VERSION}", HELM_DIR, HELM_PROGRAMS)
ALERTMANAGER = GoBuild(f"alertmanager-{ALERTMANAGER_VERSION}", ALERTMANAGER_DIR, ALERTMANAGER_PROGRAMS, extra="ui-stub")


def _recipe() -> dict[str, object]:
    """The control plane's build recipe (see :meth:`GoBuild.recipe`)."""
    return CONTROL_PLANE.recipe()


def _is_current(directory: Path, recipe: dict[str, object], build: GoBuild = CONTROL_PLANE) -> bool:
    try:
        stamp = json.loads((directory / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    if stamp != recipe:
        return False
    return all(path.is_file() for path in build.outputs(directory))


def _go_env(mod: str = "readonly") -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["GOWORK"] = "off"
    parallel = max(1, min(os.cpu_count() or 1, 4))
    env["GOFLAGS"] = f"-mod={mod} -p={parallel}"
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


def _run_go(args: list[str], what: str, module_dir: Path = TESTBED_DIR, mod: str = "readonly") -> str:
    result = subprocess.run(
        [_go_binary(), *args], cwd=module_dir, env=_go_env(mod), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        tail = "\n".join(output.splitlines()[-40:])
        raise BinaryBuildError(
            f"{what} failed (exit {result.returncode}) in {module_dir}:\n  go {' '.join(args)}\n{tail}\n"
            "Hint: a network error means the Go module proxy was unreachable; a `go.sum` or `updates to go.mod"
            f" needed` error means {module_dir.name}/go.mod was edited without `go mod tidy`."
        )
    return result.stdout


def _build_program(program: Program, out_dir: Path, module_dir: Path = TESTBED_DIR, mod: str = "readonly") -> None:
    ldflags = " ".join(("-s", "-w", *program.ldflags))
    target = out_dir / f".{program.name}.partial"
    _run_go(["build", "-trimpath", f"-ldflags={ldflags}", "-o", str(target), program.package], f"building {program.name}",
            module_dir, mod)
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


ALERTMANAGER_UI_DIST = "vendor/github.com/prometheus/alertmanager/ui/app/dist/index.html"
ALERTMANAGER_UI_STUB = "<!doctype html><title>Alertmanager</title><p>The web UI is not built into this test binary.</p>\n"


def _vendor_with_ui_stub(build: GoBuild, directory: Path) -> Path:
    """Copy the wrapper module next to the binaries, vendor it and give Alertmanager's UI a stub page.

    Alertmanager's ``ui`` package embeds ``app/dist``, which its release process builds with npm and
    which is not in the module zip the Go proxy serves, so ``go build`` of the pinned module fails with
    "pattern app/dist: no matching files found". The module cache is read-only and Go refuses overlays
    into it; so the build vendors the wrapper's exact graph (``go mod vendor -e``: the missing embed is
    the one error it passes over) into ``<cache>/<key>/src`` and adds one placeholder page. The API the
    tests use is unaffected; only the browser UI is missing. Returns the module directory to build in.
    """
    source = directory.parent / "src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for name in ("go.mod", "go.sum", "tools.go"):
        shutil.copyfile(build.module_dir / name, source / name)
    _run_go(["mod", "vendor", "-e"], "vendoring the Alertmanager module", source, mod="mod")
    stub = source / ALERTMANAGER_UI_DIST
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(ALERTMANAGER_UI_STUB)
    return source


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


def _ensure(build: GoBuild, report: Reporter | None, what: str) -> Path:
    directory = build.bin_dir()
    recipe = build.recipe()
    if _is_current(directory, recipe, build):
        return directory
    say: Reporter = report or (lambda message: None)
    # One lock for every build: two `go build`s at once would only fight over the same cores.
    with _build_lock(CONTROL_PLANE.bin_dir()):
        if _is_current(directory, recipe, build):  # another process finished the build while we waited
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / STAMP_NAME).unlink(missing_ok=True)
        started = time.monotonic()
        module_dir, mod = build.module_dir, "readonly"
        if build.extra == "ui-stub":
            module_dir, mod = _vendor_with_ui_stub(build, directory), "vendor"
        for index, program in enumerate(build.programs, start=1):
            say(f"building {program.name} ({index}/{len(build.programs)}) from {program.package}")
            step = time.monotonic()
            _build_program(program, directory, module_dir, mod)
            say(f"built {program.name} in {time.monotonic() - step:.0f} s")
        if build.extra == "kwok-stages":
            _write_kwok_stages(directory)
        if build.extra == "ui-stub":
            shutil.rmtree(module_dir, ignore_errors=True)  # 48 MB of vendored sources, rebuilt from the proxy cache
        (directory / STAMP_NAME).write_text(json.dumps(recipe, indent=2, sort_keys=True))
        say(f"{what} ready in {directory} after {time.monotonic() - started:.0f} s")
    return directory


def ensure_binaries(report: Reporter | None = None) -> Path:
    """Return the directory holding every test-bed binary, building what is missing or outdated.

    Warm (stamp matches ``go.mod``/``go.sum`` and the program list): only reads the stamp. Cold: runs
    ``go build`` once per program with Go's default module and build caches, which takes a long time
    on a small machine. Raises :class:`BinaryBuildError` carrying Go's error output on failure.
    """
    return _ensure(CONTROL_PLANE, report, "control-plane binaries")


def ensure_helm(report: Reporter | None = None) -> Path:
    """Return the path of the pinned ``helm`` binary, building it first if needed (≈ 2–3 min cold on two
    cores, mostly compiling the ``k8s.io`` v0.37 libraries; a stamp check when warm). Same caches, lock
    and errors as :func:`ensure_binaries`."""
    return _ensure(HELM, report, f"helm {HELM_VERSION}") / "helm"


def ensure_alertmanager(report: Reporter | None = None) -> Path:
    """Return the directory holding the pinned ``alertmanager`` and ``amtool`` binaries, building them
    first if needed (a stamp check when warm). Same caches, lock and errors as :func:`ensure_binaries`."""
    return _ensure(ALERTMANAGER, report, f"alertmanager {ALERTMANAGER_VERSION}")


def main(argv: list[str] | None = None) -> int:
    """CLI: build or reuse the binaries (``--helm``: helm too, ``--alertmanager``: Alertmanager and amtool too;
    ``--only-helm`` / ``--only-alertmanager``: without the control plane); progress goes to stderr, nothing
    is printed when everything is already built."""
    args = sys.argv[1:] if argv is None else argv
    unknown = [a for a in args if a not in ("--helm", "--only-helm", "--alertmanager", "--only-alertmanager")]
    if unknown:
        print("usage: python -m sandbox.binaries [--helm | --only-helm] [--alertmanager | --only-alertmanager]"
              f" (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2

    def report(message: str) -> None:
        print(f"[sandbox.binaries] {message}", file=sys.stderr, flush=True)

    try:
        only = [a for a in args if a.startswith("--only-")]
        if not only:
            ensure_binaries(report)
        if "--helm" in args or "--only-helm" in args:
            ensure_helm(report)
        if "--alertmanager" in args or "--only-alertmanager" in args:
            ensure_alertmanager(report)
    except BinaryBuildError as error:
        print(f"[sandbox.binaries] {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
