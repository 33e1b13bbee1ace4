"""Shared fixtures: a scripted backend and an edge pointed at it, both real HTTP servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from ccgate.edge.app import create_app
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
    "REDIS_URL",
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


EdgeFactory = Callable[..., Any]


@pytest.fixture
def edge_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Start an edge with the given environment; returns its base URL."""
    servers: list[ThreadedServer] = []

    def start(env: dict[str, str]) -> str:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        server = ThreadedServer(create_app(settings))
        server.__enter__()
        server.app = server._server.config.app  # type: ignore[attr-defined]
        servers.append(server)
        return server.url

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
def edge(backend: FakeBackend, edge_factory: Callable[..., str]) -> str:
    return edge_factory(backend_env(backend))


@contextmanager
def anthropic_client(url: str, **kwargs: Any) -> Iterator[Any]:
    import anthropic

    client = anthropic.Anthropic(base_url=url, api_key="anything", max_retries=0, **kwargs)
    try:
        yield client
    finally:
        client.close()
