#!/usr/bin/env bash
# Installs everything the bot and its tests need on a fresh Debian machine, idempotently:
# Debian packages (redis-server, the container tools), the virtualenv with the project, the local
# Kubernetes control plane and helm built from source (cached under ~/.cache/k8s-incident-bot/).
# A second run does nothing visible and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        log "need root to run: $*"; return 1; fi
}

# chromium: the demo page's browser test (Playwright drives Debian's build, no download).
# podman, runc, mmdebstrap: tests/deploy/test_image.py builds the real Dockerfile on a Debian base made
# from Debian's packages (no Docker daemon, no Docker Hub here); runc because podman's default crun fails
# on this kind of machine ("cgroups in hybrid mode not supported"); uidmap and fuse-overlayfs are
# podman's helpers for its storage.
APT_PACKAGES=(redis-server redis-sentinel haproxy chromium podman runc mmdebstrap uidmap fuse-overlayfs)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq >/dev/null
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian package starts a system redis on 6379; tests and the demo start their own.
    as_root systemctl disable --now redis-server redis-sentinel haproxy >/dev/null 2>&1 || true
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    log "creating virtualenv .venv"
    "$PYTHON" -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    log "installing the project and its test dependencies into .venv"
    if ! .venv/bin/pip install -q -e '.[test]' >.venv/install.log 2>&1; then
        cat .venv/install.log >&2; exit 1
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# podman-compose runs docker-compose.yml in tests/deploy/test_compose_run.py. From PyPI: Debian's 1.0.3
# cannot read the file (no `config`, no long-form env_file); 1.6.0 can. Kept out of pyproject's test
# extra because only that test uses it.
PODMAN_COMPOSE=podman-compose==1.6.0
if [ ! -x .venv/bin/podman-compose ] || \
   ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('podman-compose') != '1.6.0')"; then
    log "installing $PODMAN_COMPOSE into .venv"
    .venv/bin/pip install -q "$PODMAN_COMPOSE" >/dev/null
fi

if [ "${SKIP_CLUSTER_BUILD:-0}" != "1" ]; then
    # --helm: helm v4.3.1 for the chart tests, from its own wrapper module (sandbox/gotools/helm).
    # --alertmanager: Alertmanager and amtool v0.35.0 for the alert-intake tests (sandbox/gotools/alertmanager).
    .venv/bin/python -m sandbox.binaries --helm --alertmanager
fi
