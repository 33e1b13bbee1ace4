# syntax=docker/dockerfile:1.7
# One image for `ccgate serve`, `ccgate worker` and `ccgate bot`; the `worker` target adds Node
# and the Claude Code CLI at the same pin as the e2e tests (tests/e2e/package-lock.json).
ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
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
RUN uv sync --frozen --no-dev --no-install-workspace
COPY . .
RUN uv sync --frozen --no-dev --no-editable

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ccgate" \
      org.opencontainers.image.description="Claude Code on any backend, one shared quota" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --uid 10001 --user-group --home-dir /home/ccgate --create-home ccgate
COPY --from=build /app/.venv /app/.venv
# Read-only root file system friendly: nothing is written outside /tmp and mounted volumes.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/ccgate
WORKDIR /home/ccgate
USER 10001
EXPOSE 8082
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8082/healthz', timeout=2)"]
ENTRYPOINT ["ccgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8082"]

FROM runtime AS worker
USER root
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY tests/e2e/package.json tests/e2e/package-lock.json /opt/claude/
RUN npm ci --prefix /opt/claude --no-audit --no-fund \
    && ln -s /opt/claude/node_modules/.bin/claude /usr/local/bin/claude \
    && npm cache clean --force
USER 10001
HEALTHCHECK NONE
CMD ["worker"]
