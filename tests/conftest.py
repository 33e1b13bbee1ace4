"""Shared fixtures: a scripted backend and an edge pointed at it, both real HTTP servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from ccgate.edge.app import create_app
from ccgate.edge.transport import GuardedHttpToolsProtocol
from ccgate.shared.settings import Settings
from tests.fakes.backend import FakeBackend
from tests.fakes.server import ThreadedServer

_PROVIDER_ENV_PREFIXES = (
    "NVIDIA_NIM_",
    "OPENROUTER_",
    "DEEPSEEK_",
    "LMSTUDIO_",
    "LM_STUDIO_",
    "LLAMACPP_",
    "OLLAMA_",
    "OPENAI_COMPAT_",
    "PROVIDER_",
    "MODEL",
    "ENABLE_",
    "CCGATE_",
    "REDIS_",
    "BOT_REDIS_URL",
    "LIMITER_",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they set, never the developer's own."""
    import os

    for name in list(os.environ):
        if name.startswith(_PROVIDER_ENV_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    with FakeBackend() as fake:
        yield fake


@dataclass
class Edge:
    url: str
    app: Any

    def in_flight(self) -> int:
        status = asyncio.run(self.app.state.limiter.status())
        return sum(p["in_flight"] for p in status["providers"].values())

    def wait_idle(self, timeout: float = 5.0) -> int:
        """In-flight leases once the edge settles (a released slot is freed asynchronously)."""
        deadline = time.monotonic() + timeout
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.in_flight()


@pytest.fixture
def edge_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], Edge]]:
    """Start an edge (a real uvicorn server on loopback) with the given environment."""
    servers: list[ThreadedServer] = []

    def start(env: dict[str, str]) -> Edge:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        app = create_app(Settings.from_env(None))
        server = ThreadedServer(app, http=GuardedHttpToolsProtocol)  # as `ccgate serve` runs
        server.__enter__()
        servers.append(server)
        return Edge(server.url, app)

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def backend_env(backend: FakeBackend, fmt: str = "openai", **extra: str) -> dict[str, str]:
    base = backend.url + ("/v1" if fmt == "openai" else "")
    env = {
        "MODEL": "openai_compat/fake-model",
        "OPENAI_COMPAT_BASE_URL": base,
        "OPENAI_COMPAT_API_FORMAT": fmt,
        "OPENAI_COMPAT_API_KEY": "sk-provider-secret-123",
        "HTTP_FIRST_BYTE_TIMEOUT": "5",
        "HTTP_READ_TIMEOUT": "5",
        "PROVIDER_RATE_LIMIT": "1000",
        "PROVIDER_MAX_CONCURRENCY": "50",
    }
    env.update(extra)
    return env


@pytest.fixture
def edge(backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]) -> Edge:
    return edge_factory(backend_env(backend))


@contextmanager
def anthropic_client(url: str, **kwargs: Any) -> Iterator[Any]:
    import anthropic

    client = anthropic.Anthropic(base_url=url, api_key="anything", max_retries=0, **kwargs)
    try:
        yield client
    finally:
        client.close()
