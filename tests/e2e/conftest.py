"""The real Claude Code CLI against the edge and a scripted backend.

Every response the edge sends is recorded on the way out and every SSE stream is checked
against the Anthropic grammar after the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ccgate.edge.app import create_app
from ccgate.shared.settings import Settings
from tests.conftest import backend_env
from tests.fakes.backend import FakeBackend
from tests.fakes.server import ThreadedServer
from tests.redis_server import RedisServer, redis_server
from tests.sse_grammar import check_grammar, parse_sse, sdk_accumulate

E2E_DIR = Path(__file__).parent
RUN_TIMEOUT = 150.0


def claude_path() -> str:
    explicit = os.environ.get("CLAUDE_BIN")
    path = Path(explicit) if explicit else E2E_DIR / "node_modules" / ".bin" / "claude"
    if not path.exists():
        pytest.fail(
            f"the Claude Code CLI is not installed at {path}: run `make test` (npm ci in tests/e2e)"
        )
    return str(path)


class RecordingASGI:
    """Passes requests to the app and keeps a copy of each /v1/messages response.

    A response's entry is updated before each of its parts is passed on, so a client that has
    just read the end of an answer always finds all of it here (the app may still be finishing).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.responses: list[tuple[int, str, bytes]] = []
        self.requests: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/messages"):
            await self.app(scope, receive, send)
            return
        status, ctype, chunks, body = 0, "", [], []
        index = -1

        async def receive_recorded() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
            return message

        async def record(message: Any) -> None:
            nonlocal status, ctype, index
            if message["type"] == "http.response.start":
                status = message["status"]
                ctype = dict(message.get("headers", [])).get(b"content-type", b"").decode()
                index = len(self.responses)
                self.responses.append((status, ctype, b""))
                self.requests.append(b"".join(body))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                self.responses[index] = (status, ctype, b"".join(chunks))
            await send(message)

        await self.app(scope, receive_recorded, record)


@dataclass
class Run:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("type") == "result"]
        assert results, f"no result event; stderr: {self.stderr[-2000:]}"
        return results[-1]

    def blocks(self, kind: str) -> list[dict[str, Any]]:
        return [
            b
            for e in self.events
            if e.get("type") == "assistant"
            for b in e["message"]["content"]
            if b.get("type") == kind
        ]


def claude_env(edge_url: str, home: Path) -> dict[str, str]:
    """The CLI's environment: this edge, a throwaway home, no traffic besides the API."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": edge_url,
        "ANTHROPIC_API_KEY": "dummy-client-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_MAX_RETRIES": "3",
    }


@dataclass
class Harness:
    backend: FakeBackend
    edge_url: str
    recorder: RecordingASGI
    app: Any
    workspace: Path
    home: Path
    env_extra: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = claude_env(self.edge_url, self.home)
        env.update(self.env_extra)
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}  # "" removes a variable

    def claude(self, prompt: str, *args: str, argv: list[str] | None = None, **env: str) -> Run:
        command = argv or [claude_path()]
        command = [*command, "-p", prompt, "--output-format", "stream-json", "--verbose", *args]
        process = subprocess.Popen(
            command,
            cwd=self.workspace,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=RUN_TIMEOUT)
        finally:
            # The CLI's whole process group goes, whatever happened.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return Run(process.returncode, events, err)


@pytest.fixture
def harness_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Harness]]:
    stack: list[Any] = []

    def make(fmt: str = "openai", **env: str) -> Harness:
        backend = FakeBackend().__enter__()
        stack.append(backend)
        for key, value in backend_env(backend, fmt, **env).items():
            monkeypatch.setenv(key, value)
        app = create_app(Settings.from_env(None))
        recorder = RecordingASGI(app)
        server = ThreadedServer(recorder).__enter__()
        stack.append(server)
        root = Path(tempfile.mkdtemp(prefix="ccgate-e2e-"))
        (root / "ws").mkdir()
        (root / "home").mkdir()
        harness = Harness(backend, server.url, recorder, app, root / "ws", root / "home")
        stack.append(harness)
        return harness

    yield make
    for item in reversed(stack):
        if isinstance(item, Harness):
            for status, ctype, body in item.recorder.responses:
                if status == 200 and ctype.startswith("text/event-stream"):
                    events = parse_sse(body)
                    check_grammar(events, allow_error=True)
                    if events and events[-1][0] == "message_stop":
                        message = sdk_accumulate(events)
                        assert message is not None and message.stop_reason is not None
            shutil.rmtree(item.workspace.parent, ignore_errors=True)
        else:
            item.__exit__(None, None, None)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[RedisServer]:
    """A real Redis for the bot's tests (one per test module)."""
    with redis_server() as server:
        yield server


@pytest.fixture
def bot_redis(redis_url: RedisServer) -> RedisServer:
    """The module's Redis, emptied of what its earlier tests left (queue, sessions, outbox)."""
    redis_url.flush()
    return redis_url


async def until(predicate: Callable[[], bool], within: float = 90) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)
