# syntax=docker/dockerfile:1
# One image for the bot (`serve` / `socket`) and its RQ workers (`worker`): the subcommand is the argument.
#   docker build -t k8s-incident-bot .
#   docker run --env-file deploy/env.example k8s-incident-bot serve
# Stage 1 builds a virtualenv with the dependencies and the project; stage 2 is the slim runtime
# with that virtualenv, the code and the message templates, running as an unprivileged user.
# Any Debian-like image with python3 (>= 3.11) and `python` on PATH can be the base:
#   docker build --build-arg PYTHON_IMAGE=my-registry/python:3.11-slim .
# tests/deploy/test_image.py builds it with podman on a bookworm base made by mmdebstrap.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
# Dependencies first, from pyproject.toml alone, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
# The code. Installed in editable mode so it runs from /app exactly as in development: the bundled
# templates are found next to the packages (incident/settings.py DEFAULT_TEMPLATES_DIR = /app/templates).
COPY k8s_incident_bot ./k8s_incident_bot
COPY incident ./incident
COPY chat ./chat
COPY observability ./observability
COPY persistence ./persistence
COPY service ./service
COPY bot ./bot
COPY kube ./kube
COPY workers ./workers
COPY templates ./templates
# Then slim the virtualenv (241 → under 200 MB): the kubernetes client ships an asyncio copy of itself
# (kubernetes/aio, 68 MB) that nothing here imports, and with it the aiohttp family it alone needs; its
# generated API and model classes (kubernetes/client, 57 MB) are kept as bytecode only — 800 modules that
# would otherwise be compiled on every start, since the root file system is read-only — at the cost of
# source lines in tracebacks from inside that generated code. pip and setuptools are only needed to build.
# The smoke step runs afterwards, so a missing piece fails the build rather than the pod.
RUN pip install --no-deps -e . \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/kubernetes/aio" \
    && find "$site/kubernetes" -name '*_test.py' -delete \
    && python -m pip uninstall -q -y aiohttp aiohttp-retry yarl multidict frozenlist propcache aiohappyeyeballs aiosignal \
    && find "$site/kubernetes/client" -name __pycache__ -prune -exec rm -rf {} + \
    && python -m compileall -q -b "$site/kubernetes/client" \
    && find "$site/kubernetes/client" -name '*.py' -delete \
    && python -m pip uninstall -q -y pip setuptools \
    && python -m compileall -q /app \
    && k8s-incident-bot --help >/dev/null \
    && python -c "import bot.server, workers.run, kube.assessor, kube.actions, kubernetes.client, slack_bolt, rq"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="k8s-incident-bot" \
      org.opencontainers.image.description="Slack ChatOps incident bot for Kubernetes (bot and RQ workers)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=3000
# Unprivileged, fixed ids (Kubernetes runAsNonRoot can check a numeric user).
RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid bot --home-dir /app --no-create-home --shell /usr/sbin/nologin bot
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=root:root /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# /healthz on HTTP_PORT: the bot's HTTP server (`serve`, and `socket` for its probes). A `worker` serves
# its Prometheus metrics on the same port, which answers every path, so the check means "process up".
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('HTTP_PORT', '3000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["k8s-incident-bot"]
CMD ["serve"]
