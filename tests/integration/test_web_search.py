"""Anthropic's web_search server tool on an OpenAI-compatible backend: the gateway offers a
function, runs the search against a fake SearXNG / Brave / Tavily, streams Anthropic's blocks
and feeds the results back — checked with the official SDK."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Edge, anthropic_client, backend_env
from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.search import FakeSearch, Page
from tests.sse_grammar import check_grammar, parse_sse

PAGES = [
    Page("https://docs.example.org/ccgate", "ccgate docs", "ccgate is a gateway", "2026-11-01"),
    Page("https://blocked.example.net/x", "blocked page", "should be filtered"),
    Page("https://www.example.com/news", "news", "gateway news"),
]
TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}


@pytest.fixture
def searcher() -> Iterator[FakeSearch]:
    with FakeSearch(PAGES) as fake:
        yield fake


def search_env(fake: FakeSearch, provider: str) -> dict[str, str]:
    return {
        "searxng": {"WEB_SEARCH_PROVIDER": "searxng", "SEARXNG_BASE_URL": fake.server_url},
        "brave": {
            "WEB_SEARCH_PROVIDER": "brave",
            "BRAVE_SEARCH_API_KEY": "brave-secret-key",
            "BRAVE_SEARCH_BASE_URL": fake.server_url + "/res/v1",
        },
        "tavily": {
            "WEB_SEARCH_PROVIDER": "tavily",
            "TAVILY_API_KEY": "tvly-secret-key",
            "TAVILY_BASE_URL": fake.server_url,
        },
    }[provider]


def request(tool: dict[str, Any] = TOOL) -> dict[str, Any]:
    return {
        "model": "claude-haiku-5",
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "Perform a web search for the query: ccgate"}],
        "tools": [tool],
        "tool_choice": {"type": "tool", "name": "web_search"},
    }


def script_search(backend: FakeBackend, *queries: str) -> None:
    backend.script(
        *[Turn(tool_calls=[("web_search", {"query": q})], usage=(100, 10)) for q in queries],
        Turn(text="See [ccgate docs](https://docs.example.org/ccgate).", usage=(300, 20)),
    )


@pytest.mark.parametrize("provider", ["searxng", "brave", "tavily"])
def test_web_search_runs_in_the_gateway_and_answers_as_anthropic_does(
    backend: FakeBackend,
    searcher: FakeSearch,
    edge_factory: Callable[[dict[str, str]], Edge],
    provider: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    edge = edge_factory(backend_env(backend, **search_env(searcher, provider)))
    script_search(backend, "ccgate gateway")
    with anthropic_client(edge.url) as client:
        message = client.messages.create(**request())
    kinds = [b.type for b in message.content]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text"]
    use, result, text = message.content
    assert use.name == "web_search" and use.input == {"query": "ccgate gateway"}
    assert use.id.startswith("srvtoolu_") and result.tool_use_id == use.id
    assert [r.url for r in result.content] == [p.url for p in PAGES]
    assert result.content[0].title == "ccgate docs"
    assert "docs.example.org" in text.text
    assert message.usage.server_tool_use.web_search_requests == 1
    assert message.usage.input_tokens == 400 and message.usage.output_tokens == 30
    # The backend was offered a function, forced once, then shown the results.
    first, second = (r.body for r in backend.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["web_search"]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "web_search"}}
    assert second["tool_choice"] == "auto"
    assert "https://docs.example.org/ccgate" in second["messages"][-1]["content"]
    assert len(searcher.seen) == 1
    assert edge.wait_idle() == 0
    assert "secret-key" not in caplog.text


def test_web_search_over_the_anthropic_pass_through(
    backend: FakeBackend, searcher: FakeSearch, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(backend_env(backend, "anthropic", **search_env(searcher, "searxng")))
    script_search(backend, "ccgate gateway")
    with anthropic_client(edge.url) as client:
        message = client.messages.create(**request())
    assert [b.type for b in message.content] == [
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    first, second = (r.body for r in backend.requests)
    assert [t["name"] for t in first["tools"]] == ["web_search"]
    assert "type" not in first["tools"][0]  # an ordinary tool, not the server tool
    result = second["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and "docs.example.org" in result["content"]
    assert message.usage.server_tool_use.web_search_requests == 1


def test_the_stream_carries_the_blocks_with_consecutive_indices(
    backend: FakeBackend, searcher: FakeSearch, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(backend_env(backend, **search_env(searcher, "searxng")))
    script_search(backend, "first", "second")
    with httpx.stream(
        "POST",
        edge.url + "/v1/messages",
        json={**request(), "stream": True},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    ) as response:
        events = parse_sse(response.read())
    check_grammar(events)
    starts = [d for name, d in events if name == "content_block_start"]
    assert [(d["index"], d["content_block"]["type"]) for d in starts] == [
        (0, "server_tool_use"),
        (1, "web_search_tool_result"),
        (2, "server_tool_use"),
        (3, "web_search_tool_result"),
        (4, "text"),
    ]
    assert sum(1 for name, _ in events if name == "message_start") == 1
    delta = next(d for name, d in events if name == "message_delta")
    assert delta["usage"]["server_tool_use"] == {"web_search_requests": 2}
    assert edge.wait_idle() == 0


def test_domains_are_honoured(
    backend: FakeBackend, searcher: FakeSearch, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(backend_env(backend, **search_env(searcher, "searxng")))
    script_search(backend, "q")
    with anthropic_client(edge.url) as client:
        message = client.messages.create(**request({**TOOL, "blocked_domains": ["example.net"]}))
    assert [r.url for r in message.content[1].content] == [PAGES[0].url, PAGES[2].url]
    script_search(backend, "q")
    with anthropic_client(edge.url) as client:
        message = client.messages.create(**request({**TOOL, "allowed_domains": ["example.com"]}))
    assert [r.url for r in message.content[1].content] == [PAGES[2].url]


@pytest.mark.parametrize(("status", "code"), [(500, "unavailable"), (429, "too_many_requests")])
def test_a_failed_search_is_an_error_block_not_a_failed_request(
    backend: FakeBackend,
    searcher: FakeSearch,
    edge_factory: Callable[[dict[str, str]], Edge],
    status: int,
    code: str,
) -> None:
    searcher.status = status
    edge = edge_factory(backend_env(backend, **search_env(searcher, "searxng")))
    script_search(backend, "q")
    with anthropic_client(edge.url) as client:
        message = client.messages.create(**request())
    result = message.content[1]
    assert result.type == "web_search_tool_result"
    assert result.content.type == "web_search_tool_result_error"
    assert result.content.error_code == code
    assert message.content[-1].type == "text"


def test_max_uses_is_honoured(
    backend: FakeBackend, searcher: FakeSearch, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(backend_env(backend, **search_env(searcher, "searxng")))
    script_search(backend, "one")
    with anthropic_client(edge.url) as client:
        message = client.messages.create(**request({**TOOL, "max_uses": 1}))
    assert message.usage.server_tool_use.web_search_requests == 1
    # After its last use the tool is no longer offered.
    assert "tools" not in backend.requests[1].body


def test_off_removes_the_tool_as_before(
    backend: FakeBackend,
    edge_factory: Callable[[dict[str, str]], Edge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    edge = edge_factory(backend_env(backend))
    backend.script(Turn(text="no search here"))
    with anthropic_client(edge.url) as client:
        message = client.messages.create(**request())
    assert message.content[0].text == "no search here"
    body = backend.requests[0].body
    assert "tools" not in body and "tool_choice" not in body
    assert "web_search tool removed from the request (WEB_SEARCH_PROVIDER=off)" in caplog.text
    assert json.dumps(body).count("web_search") == 0
