"""The compose stack for real: both Dockerfile targets built with BuildKit (offline base images
where no registry answers), redis + two edges + nginx + the worker + the bot brought up as a
compose project of our own, and used as a user would — the real Claude Code CLI through nginx,
a Telegram message through the bot and the worker — then torn down with everything it made.

Stand-ins (their images cannot be built from Debian packages, and no registry is reachable):
the scripted OpenAI-compatible backend for Ollama, an OTLP/HTTP receiver for Jaeger, the fake
Telegram Bot API for Telegram. They run on this host; see tests/deploy/stack.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy import stack
from tests.deploy.engine import Engine, engine
from tests.e2e.conftest import claude_path
from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.otlp import OtlpHttpReceiver
from tests.fakes.server import free_port
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.docker

ANSWER = "pong from the stand-in backend"
LIMIT = 6  # the quota of the limiter test's provider, shared by both edges
ANA = 4242  # the Telegram user allowed to use the bot
TOKEN = "123456:stack-test-token"


def until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.5)


@dataclass
class Stack:
    project: stack.Project
    backend: FakeBackend
    otlp: OtlpHttpReceiver
    telegram: FakeTelegram
    url: str  # nginx, as published on this host's loopback


@pytest.fixture(scope="module")
def docker() -> Iterator[Engine]:
    with engine() as found:
        if isinstance(found, str):
            pytest.skip(f"no Docker engine can be started here: {found}")
        stack.build_images(found)
        yield found


@pytest.fixture(scope="module")
def running(docker: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    host = stack.gateway(docker)
    backend, otlp, telegram = (
        FakeBackend(Turn(text=ANSWER)),
        OtlpHttpReceiver(),
        FakeTelegram(TOKEN),
    )
    for fake in (backend, otlp, telegram):
        fake.host = host
    with backend, otlp, telegram:

        def reach(url: str) -> str:  # a stand-in's address as the containers see it
            return url.replace(host, stack.HOST)

        env = {
            # Claude Code's tiers go to "Ollama"; a model name with no tier in it (only the
            # limiter test sends one) goes to a provider of its own, so that test's quota is
            # not spent by the others and theirs is not spent by it.
            "MODEL_OPUS": "ollama/stand-in",
            "MODEL_SONNET": "ollama/stand-in",
            "MODEL_HAIKU": "ollama/stand-in",
            "OLLAMA_BASE_URL": reach(backend.server_url),
            "MODEL": "openai_compat/limited",
            "OPENAI_COMPAT_BASE_URL": reach(backend.server_url) + "/v1",
            "OPENAI_COMPAT_RATE_LIMIT": str(LIMIT),
            "OPENAI_COMPAT_RATE_WINDOW": "3600",
            "LIMITER_QUEUE_TIMEOUT": "0.5",
            "OTEL_EXPORTER_OTLP_ENDPOINT": reach(otlp.endpoint),
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }
        bot_env = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": reach(telegram.url),
            "ALLOWED_TELEGRAM_USER_ID": str(ANA),
        }
        port = free_port()
        override = tmp_path_factory.mktemp("stack") / "override.yml"
        stack.write_override(override, env, bot_env, port)
        with stack.project(docker, override) as project:
            project.compose(
                "up",
                "--detach",
                "--wait",
                "--no-build",
                "--pull",
                "never",
                *stack.SERVICES,
                timeout=900,
            )
            yield Stack(project, backend, otlp, telegram, f"http://127.0.0.1:{port}")
        left = project.leftovers()
        assert not left, f"the test left these behind: {left}"


WORKER_PROBE = (
    "find / -xdev -path '*anthropic*' -name '*musl*' -print; claude --version;"
    " command -v node || echo no-node"
)


def test_both_images_built_and_the_worker_carries_only_the_glibc_cli(docker: Engine) -> None:
    worker = stack.IMAGES["worker"]
    found = docker.run("run", "--rm", "--entrypoint", "sh", worker, "-c", WORKER_PROBE).stdout
    lines = found.splitlines()
    assert not any("musl" in line for line in lines), found  # npm 9 put the musl build in too
    assert any(line.startswith("2.1.") for line in lines), found  # the pinned CLI runs
    assert "no-node" in lines, found  # a native executable: no Node (Debian's is 18) needed
    for image in stack.IMAGES.values():
        config = json.loads(docker.run("image", "inspect", image).stdout)[0]["Config"]
        assert config["User"] == "10001"
        assert config["Healthcheck"]["Test"][0] == "CMD"  # neither image says HEALTHCHECK NONE


def test_every_service_is_healthy(running: Stack) -> None:
    for service in stack.SERVICES:
        state = running.project.container(service)["State"]
        assert state["Health"]["Status"] == "healthy", (service, state["Health"]["Log"][-1:])
    # The bot's check reads its heartbeat, not the edge's /healthz it never serves.
    bot_check = running.project.container("bot")["Config"]["Healthcheck"]["Test"]
    assert "ccgate.bot.heartbeat" in bot_check


def test_ccgate_runs_as_non_root_on_a_read_only_root(running: Stack) -> None:
    for service in ("edge-1", "edge-2", "worker", "bot"):
        assert running.project.exec(service, "id", "-u").stdout.strip() == "10001", service
        assert running.project.container(service)["HostConfig"]["ReadonlyRootfs"], service
        write = running.project.exec(service, "touch", "/app/written")
        assert write.returncode != 0 and "Read-only file system" in write.stderr, service


def test_claude_code_gets_its_answer_through_nginx(running: Stack, tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": running.url,
        "ANTHROPIC_API_KEY": "local",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    run = subprocess.run(
        [str(claude_path()), "-p", "say pong", "--model", "sonnet", "--output-format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(run.stdout)
    assert result["is_error"] is False, run.stdout + run.stderr
    assert ANSWER in result["result"]


def test_the_two_edges_share_one_limiter(running: Stack) -> None:
    body = {
        "model": "limiter-probe",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    }
    statuses = []
    for _ in range(10):  # a new connection each time: nginx spreads them over both edges
        with httpx.Client(timeout=60) as client:
            statuses.append(client.post(running.url + "/v1/messages", json=body).status_code)
    assert statuses.count(200) == LIMIT and statuses.count(429) == 10 - LIMIT, statuses
    admitted = {edge: served(running.project, edge) for edge in ("edge-1", "edge-2")}
    assert sum(admitted.values()) == LIMIT and all(admitted.values()), admitted


def served(project: stack.Project, edge: str) -> int:
    """Requests to the limiter test's provider this edge answered with 200, from its /metrics."""
    text = project.exec(
        edge,
        "python",
        "-c",
        "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8082/metrics').read().decode())",
    ).stdout
    pattern = r'ccgate_requests_total\{[^}]*provider="openai_compat"[^}]*status="200"[^}]*\} (\S+)'
    return int(sum(float(x) for x in re.findall(pattern, text)))


def test_a_telegram_message_runs_claude_code_in_the_worker(running: Stack) -> None:
    running.telegram.user_says(ANA, "say pong")
    try:
        until(lambda: any(ANSWER in t for t in running.telegram.texts(ANA)), 300, "the answer")
    except AssertionError:
        logs = running.project.compose("logs", "--no-color", "bot", "worker")
        raise AssertionError(f"sent: {running.telegram.sent}\n{logs[-6000:]}") from None
    # The job wrote in the user's workspace, on the named volume.
    listing = running.project.exec("worker", "ls", "-ln", "/workspaces").stdout
    assert f"telegram-{ANA}" in listing and " 10001 " in listing, listing


def test_nginx_streams_request_bodies_to_the_edges(running: Stack) -> None:
    big = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "x" * 200_000}],
    }
    with httpx.Client(timeout=60) as client:
        assert client.post(running.url + "/v1/messages", json=big).status_code == 200
    logs = running.project.compose("logs", "proxy")
    assert "buffered to a temporary file" not in logs, logs[-2000:]


def test_traces_reach_the_otlp_receiver(running: Stack) -> None:
    def services() -> set[Any]:
        return {name for name, _ in running.otlp.spans}

    until(lambda: {"ccgate-edge", "ccgate-worker"} <= services(), 60, "spans from edge and worker")
