"""Backends that are not there: the start-up probe, /readyz, and a refused connection answered
with an error clients show at once (the SDK's own retry logic is the judge)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx
import httpx2  # the anthropic SDK's own HTTP client
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from ccgate.edge.keys import new_record, open_store
from ccgate.edge.probe import probe_all
from ccgate.shared.settings import Settings
from tests.conftest import Edge, backend_env
from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.server import ThreadedServer, free_port

MESSAGE = {
    "model": "claude-sonnet-4-8",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "x"}],
}


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_probe_names_the_fix_for_each_unreachable_backend(
    monkeypatch: pytest.MonkeyPatch, backend: FakeBackend
) -> None:
    rejecting = Starlette(
        routes=[Route("/models", lambda _: JSONResponse({"error": "bad key"}, 401))]
    )
    with ThreadedServer(rejecting) as rejects:
        for name, value in {
            "MODEL_OPUS": "ollama/qwen",
            "MODEL_SONNET": "openai_compat/fake-model",
            "MODEL_HAIKU": "llamacpp/x",
            "MODEL": "openrouter/y",
            "OLLAMA_BASE_URL": closed_url(),
            "OPENAI_COMPAT_BASE_URL": backend.url + "/v1",
            "LLAMACPP_BASE_URL": rejects.url,
        }.items():
            monkeypatch.setenv(name, value)
        results = {r.provider: r for r in asyncio.run(probe_all(Settings.from_env(None)))}
    assert results["openai_compat"].reachable
    ollama = results["ollama"]
    assert not ollama.reachable and "connection refused" in (ollama.problem or "")
    assert "ollama serve" in (ollama.fix or "") and "OLLAMA_BASE_URL" in (ollama.fix or "")
    assert "MODEL=" in (ollama.fix or "")
    assert not results["llamacpp"].reachable and "LLAMACPP_API_KEY" in (
        results["llamacpp"].fix or ""
    )
    assert not results["openrouter"].reachable
    assert "OPENROUTER_API_KEY is not set" in (results["openrouter"].problem or "")


def requests_counted(counter: list[httpx2.Request]) -> httpx2.Client:
    return httpx2.Client(event_hooks={"request": [counter.append]})


def test_refused_connection_is_shown_at_once_not_retried(
    edge_factory: Callable[[dict[str, str]], Edge],
) -> None:
    edge = edge_factory({"OLLAMA_BASE_URL": closed_url()})  # the default route: ollama
    sent: list[httpx2.Request] = []
    client = anthropic.Anthropic(
        base_url=edge.url, api_key="x", max_retries=5, http_client=requests_counted(sent)
    )
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(**MESSAGE)  # type: ignore[call-overload]
    assert caught.value.status_code == 503
    text = caught.value.message
    assert "ollama" in text and "ollama serve" in text and "OLLAMA_BASE_URL" in text
    assert len(sent) == 1, "the SDK retried: the error must carry x-should-retry: false"
    assert time.monotonic() - started < 60  # only a guard against a hang, not a timing test
    assert edge.wait_idle() == 0


def test_refused_first_route_falls_back_and_timeouts_stay_retryable(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(
        backend_env(
            backend,
            MODEL="ollama/gone,openai_compat/fake-model",
            OLLAMA_BASE_URL=closed_url(),
            HTTP_FIRST_BYTE_TIMEOUT="0.5",
        )
    )
    backend.script(Turn(text="from the fallback"))
    answer = httpx.post(edge.url + "/v1/messages", json=MESSAGE, timeout=30)
    assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "from the fallback"
    backend.script(Turn(text="late", stall=3))
    # Streamed, so the first-byte timeout applies (a non-streamed call may wait for a whole answer).
    slow = httpx.post(edge.url + "/v1/messages", json={**MESSAGE, "stream": True}, timeout=30)
    assert slow.status_code == 529 and "x-should-retry" not in slow.headers


def test_readyz_reports_backend_reachability(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(
        backend_env(backend, MODEL_OPUS="ollama/qwen", OLLAMA_BASE_URL=closed_url())
    )
    deadline = time.monotonic() + 30
    while True:
        body = httpx.get(edge.url + "/readyz").json()
        if len(body["backends"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert body["status"] == "ready"  # reported, not gating
    assert body["backends"]["openai_compat"]["reachable"] is True
    ollama = body["backends"]["ollama"]
    assert ollama["reachable"] is False and "ollama serve" in ollama["fix"]


def test_status_page_is_behind_the_team_keys_without_an_admin_port(
    backend: FakeBackend,
    edge_factory: Callable[[dict[str, str]], Edge],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CCGATE_KEYS_FILE", str(tmp_path / "keys.json"))
    restricted, record = new_record("bo", models="claude-haiku*")
    open_store(None).save(record)
    edge = edge_factory(backend_env(backend, CCGATE_API_KEYS="ana:sk-team-key-42"))
    assert httpx.get(edge.url + "/ccgate/", auth=("bo", restricted)).status_code == 403
    refused = httpx.get(edge.url + "/ccgate/")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(edge.url + "/ccgate/", auth=("me", "wrong")).status_code == 401
    page = httpx.get(edge.url + "/ccgate/", auth=("anyone", "sk-team-key-42"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<meta http-equiv="refresh"' in page.text and "sk-team-key-42" not in page.text
    assert "sk-provider-secret-123" not in page.text


def test_status_page_shows_in_flight_by_replica_with_redis(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    from tests.redis_server import redis_server

    def in_flight_by_replica(page: str) -> bool:
        replica = re.search(r"replica ([^<\s]+)</div>", page)
        return replica is not None and f"{replica.group(1)}: 1<br>" in page

    with redis_server() as redis:
        edge = edge_factory(backend_env(backend, REDIS_URL=redis.url))
        backend.script(Turn(text="slow", stall=3))
        slow = threading.Thread(
            target=lambda: httpx.post(edge.url + "/v1/messages", json=MESSAGE, timeout=30)
        )
        slow.start()
        deadline, page = time.monotonic() + 20, ""
        while time.monotonic() < deadline and not in_flight_by_replica(page):
            page = httpx.get(edge.url + "/ccgate/").text
            time.sleep(0.1)
        slow.join()
    assert "limiter: redis" in page and in_flight_by_replica(page), page
    assert '<span class="in-flight">1</span>' in page


def test_status_page_shows_each_routes_context_window(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(
        backend_env(backend, MODEL_SONNET_CONTEXT_WINDOW="32768", MODEL_CONTEXT_WINDOW="131072")
    )
    page = httpx.get(edge.url + "/ccgate/").text
    assert "32,768 tokens (MODEL_SONNET_CONTEXT_WINDOW)" in page
    assert "131,072 tokens (MODEL_CONTEXT_WINDOW)" in page
