"""Fixtures for the real-server tests: llama-server (built once, cached), a recording
pass-through in front of it, and an edge routed to it as provider `llamacpp`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ccgate.edge.app import create_app
from ccgate.edge.transport import GuardedHttpToolsProtocol
from ccgate.shared.settings import Settings
from tests.conftest import Edge
from tests.e2e.conftest import RecordingASGI, Run, claude_env, claude_path
from tests.fakes.server import ThreadedServer
from tests.llamacpp.corpus import Corpus
from tests.llamacpp.recorder import RecordingProxy
from tests.llamacpp.server import TOOLS_TEMPLATE, LlamaServer
from tests.sse_grammar import check_grammar, parse_sse

CLI_TIMEOUT = 300.0  # a 135M model on two shared cores: ~4K prompt tokens take a while


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    """The model's full trained context (8K): Claude Code's first request fits."""
    with LlamaServer() as server:
        yield server


@pytest.fixture(scope="session")
def llama_small() -> Iterator[LlamaServer]:
    """A 2K context on purpose: a Claude Code-sized request overflows it."""
    with LlamaServer(2048) as server:
        yield server


@pytest.fixture(scope="session")
def llama_tools() -> Iterator[LlamaServer]:
    """SmolLM2's GGUF template renders no tools, so llama-server builds no tool-call grammar for
    it; this one is started with a template that does (see TOOLS_TEMPLATE)."""
    with LlamaServer(4096, "--chat-template-file", str(TOOLS_TEMPLATE)) as server:
        yield server


@dataclass
class LlamaEdge(Edge):
    recorder: RecordingASGI
    proxy: RecordingProxy | None
    server: LlamaServer
    home: Path
    workspace: Path
    interrupted: bool = False  # a client hung up mid-answer: its stream is cut on purpose

    def cli_env(self, **extra: str) -> dict[str, str]:
        return claude_env(self.url, self.home) | {"CLAUDE_CODE_MAX_RETRIES": "2"} | extra

    def claude_popen(self, prompt: str, *args: str, **env: str) -> subprocess.Popen[str]:
        command = [claude_path(), "-p", prompt, "--output-format", "stream-json", "--verbose"]
        return subprocess.Popen(
            [*command, *args],
            cwd=self.workspace,
            env=self.cli_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def claude(self, prompt: str, *args: str, **env: str) -> Run:
        process = self.claude_popen(prompt, *args, **env)
        try:
            out, err = process.communicate(timeout=CLI_TIMEOUT)
        finally:
            kill_group(process)
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return Run(process.returncode, events, err)


def kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def llama_edge_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., LlamaEdge]]:
    """An edge with every tier on `llamacpp/<model>` at LLAMACPP_BASE_URL; by default through
    the recording pass-through, so the server's raw bytes are kept."""
    made: list[tuple[LlamaEdge, list[ThreadedServer]]] = []

    def make(
        server: LlamaServer, record_upstream: bool = True, hide_props: bool = False, **env: str
    ) -> LlamaEdge:
        servers: list[ThreadedServer] = []
        hidden = ("/props",) if hide_props else ()
        proxy = RecordingProxy(server.url, hidden) if record_upstream else None
        upstream = server.url
        if proxy is not None:
            servers.append(ThreadedServer(proxy).__enter__())
            upstream = servers[-1].url
        settings = {
            "MODEL": "llamacpp/smollm2-135m",
            "LLAMACPP_BASE_URL": upstream + "/v1",
            "HTTP_FIRST_BYTE_TIMEOUT": "240",
            "HTTP_READ_TIMEOUT": "240",
            "PROVIDER_RATE_LIMIT": "1000",
            "PROVIDER_MAX_CONCURRENCY": "4",
            # These tests hold the edge to the server's own counts; the usage scaling that makes
            # Claude Code compact in time (context/fit.py) has its tests in test_context*.py.
            "CONTEXT_USAGE_SCALING": "false",
            **env,
        }
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        app = create_app(Settings.from_env(None))
        recorder = RecordingASGI(app)
        servers.append(ThreadedServer(recorder, http=GuardedHttpToolsProtocol).__enter__())
        root = Path(tempfile.mkdtemp(prefix="ccgate-llama-"))
        (root / "ws").mkdir()
        (root / "home").mkdir()
        edge = LlamaEdge(servers[-1].url, app, recorder, proxy, server, root / "home", root / "ws")
        made.append((edge, servers))
        return edge

    yield make
    for edge, servers in made:
        for status, ctype, body in [] if edge.interrupted else edge.recorder.responses:
            if status == 200 and ctype.startswith("text/event-stream") and body:
                check_grammar(parse_sse(body), allow_error=True)
        for threaded in reversed(servers):
            threaded.__exit__(None, None, None)
        shutil.rmtree(edge.workspace.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def corpus() -> Iterator[Corpus]:
    kept = Corpus()
    yield kept
    kept.write()
