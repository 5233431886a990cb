"""Popeye, the Kubernetes cluster sanitizer, built from the Go module proxy for the assessment benchmark.

The runbook's issue asks to compare the assessment with ``k8sgpt analyze`` or ``popeye`` where they build
from the Go module proxy. Popeye does (``bench/gotools``: a wrapper module pinning it, ``go.sum``
committed); k8sgpt does not (the proxy answers 403 "This module version is not available" for it).
``go install popeye@version`` fails the same way on its deprecation lookup, hence the wrapper module.
The binary is cached under ``<cache>/tools/popeye-<version>/`` and reused.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.binaries import cache_root

POPEYE_VERSION = "v0.22.1"
GOTOOLS_DIR = Path(__file__).resolve().parent / "gotools"


def popeye_path() -> Path:
    return cache_root() / "tools" / f"popeye-{POPEYE_VERSION}" / "popeye"


def ensure_popeye(say: Callable[[str], None] = print) -> Path | None:
    """The cached popeye binary, built on first use; ``None`` (and why, through ``say``) if it cannot be built."""
    target = popeye_path()
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(".popeye.partial")
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    say(f"building popeye {POPEYE_VERSION} from the Go module proxy (once; a few minutes on 2 cores)…")
    started = time.monotonic()
    try:
        result = subprocess.run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(partial),
                                 "github.com/derailed/popeye"], cwd=GOTOOLS_DIR, env=env, capture_output=True,
                                text=True, check=False, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as error:
        say(f"popeye left out of the comparison: {error}")
        return None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        say(f"popeye left out of the comparison: go build failed:\n{tail}")
        return None
    partial.replace(target)
    say(f"  built in {time.monotonic() - started:.0f} s")
    return target


def run_popeye(popeye: Path, kubeconfig: str) -> tuple[float, int]:
    """One whole-cluster popeye scan (JSON report, exit code forced to 0); wall seconds and report bytes."""
    started = time.monotonic()
    result = subprocess.run([str(popeye), f"--kubeconfig={kubeconfig}", "--all-namespaces", "--out=json",
                             "--force-exit-zero"], capture_output=True, check=False, timeout=900)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"popeye exited {result.returncode}: {result.stderr.decode(errors='replace')[-500:]}")
    return elapsed, len(result.stdout)
