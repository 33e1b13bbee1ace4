"""The edge on a real port, a scripted backend on another, the official anthropic SDK as judge."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Edge, anthropic_client, backend_env
from tests.edge_requests import MODEL, TOOLS, post, simple
from tests.fakes.backend import FakeBackend, Turn
from tests.sse_grammar import check_grammar, parse_sse


def test_create_and_stream_give_the_same_message(edge: Edge, backend: FakeBackend) -> None:
    turn = Turn(text="Hello from the backend", reasoning="thinking hard")
    backend.script(turn, turn)
    with anthropic_client(edge.url) as client:
        created = client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
        with client.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            streamed = s.get_final_message()
    for message in (created, streamed):
        assert [b.type for b in message.content] == ["thinking", "text"]
        assert message.content[1].text == "Hello from the backend"  # type: ignore[union-attr]
        assert message.stop_reason == "end_turn"
        assert message.model == MODEL
        assert message.usage.input_tokens == 123 and message.usage.output_tokens == 45
    assert backend.requests[0].body["model"] == "fake-model"
    assert edge.wait_idle() == 0


def test_tool_use_round_trip_with_parallel_calls(edge: Edge, backend: FakeBackend) -> None:
    backend.script(
        Turn(
            text="Let me look.",
            tool_calls=[("Bash", {"command": "ls"}), ("Read", {"file_path": "/etc/hostname"})],
        ),
        Turn(text="There are two files."),
    )
    with anthropic_client(edge.url) as client:
        first = client.messages.create(
            model=MODEL, max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "look"}]
        )
        assert first.stop_reason == "tool_use"
        uses = [b for b in first.content if b.type == "tool_use"]
        assert [(u.name, u.input) for u in uses] == [
            ("Bash", {"command": "ls"}),
            ("Read", {"file_path": "/etc/hostname"}),
        ]
        results: list[Any] = [
            {"type": "tool_result", "tool_use_id": uses[0].id, "content": "a.txt\nb.txt"},
            {
                "type": "tool_result",
                "tool_use_id": uses[1].id,
                "content": "No such file",
                "is_error": True,
            },
        ]
        second = client.messages.create(
            model=MODEL,
            max_tokens=100,
            tools=TOOLS,
            messages=[
                {"role": "user", "content": "look"},
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": results},
            ],
        )
    assert second.content[0].text == "There are two files."  # type: ignore[union-attr]
    sent = backend.requests[1].body["messages"]
    tool_messages = [m for m in sent if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [uses[0].id, uses[1].id]
    assert tool_messages[0]["content"] == "a.txt\nb.txt"
    assert tool_messages[1]["content"] == "[tool error] No such file"


def test_raw_stream_follows_the_grammar(edge: Edge, backend: FakeBackend) -> None:
    backend.script(Turn(text="Hi", reasoning="r", tool_calls=[("Bash", {"command": "pwd"})]))
    response = post(edge, simple(stream=True, tools=TOOLS))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    check_grammar(parse_sse(response.content))


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
        (b'{"model": "m", "max_tokens": 5, "messages": "hello"}', "messages"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_bad_input_is_a_clear_400(edge: Edge, body: bytes, needle: str) -> None:
    response = httpx.post(
        edge.url + "/v1/messages", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    data = response.json()
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
    assert needle in data["error"]["message"]
    assert edge.in_flight() == 0


def test_unknown_route_and_method_are_anthropic_shaped(edge: Edge) -> None:
    for response in (httpx.get(edge.url + "/v1/nope"), httpx.get(edge.url + "/v1/messages")):
        assert response.status_code in (404, 405)
        assert response.json()["type"] == "error"


def test_side_endpoints(edge: Edge) -> None:
    assert httpx.head(edge.url + "/").status_code == 200
    assert httpx.get(edge.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(edge.url + "/readyz").status_code == 200
    models = httpx.get(edge.url + "/v1/models").json()
    assert models["data"][0]["id"] == "claude-via-openai_compat/fake-model"
    with anthropic_client(edge.url) as client:
        count = client.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": "hello world " * 50}], tools=TOOLS
        )
    assert 100 < count.input_tokens < 250


def test_quota_savers_never_reach_the_backend(edge: Edge, backend: FakeBackend) -> None:
    with anthropic_client(edge.url) as client:
        probe = client.messages.create(
            model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "quota"}]
        )
        with client.messages.stream(
            model=MODEL,
            max_tokens=100,
            system="Generate a concise, sentence-case title (3-7 words)",
            messages=[{"role": "user", "content": "<session>\nfix the build\n</session>"}],
        ) as s:
            title = s.get_final_message()
    assert probe.content[0].text == "Quota check passed."  # type: ignore[union-attr]
    assert title.content[0].text == '{"title":"Fix the build"}'  # type: ignore[union-attr]
    assert backend.requests == []


@pytest.mark.parametrize("fmt", ["anthropic"])
def test_anthropic_pass_through(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge], fmt: str
) -> None:
    edge = edge_factory(backend_env(backend, fmt))
    backend.script(
        Turn(text="native", reasoning="deep", tool_calls=[("Bash", {"command": "ls"})]),
        Turn(text="plain"),
    )
    with anthropic_client(edge.url) as client:
        with client.messages.stream(
            model=MODEL, max_tokens=50, tools=TOOLS, messages=[{"role": "user", "content": "x"}]
        ) as s:
            streamed = s.get_final_message()
        created = client.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
    assert [b.type for b in streamed.content] == ["thinking", "text", "tool_use"]
    assert streamed.model == MODEL and streamed.stop_reason == "tool_use"
    assert created.content[0].text == "plain"  # type: ignore[union-attr]
    sent = backend.requests[0]
    assert sent.path == "/v1/messages" and sent.body["model"] == "fake-model"
    assert sent.headers["x-api-key"] == "sk-provider-secret-123"
    assert edge.wait_idle() == 0


def test_anthropic_error_in_the_same_read_as_message_start(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    """One upstream read carrying message_start and then an error event: the client still
    gets message_start first, then the error (the error used to drop the events before it)."""
    edge = edge_factory(backend_env(backend, "anthropic"))
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message",
             "role": "assistant", "model": "fake-model", "content": [], "stop_reason": None,
             "usage": {"input_tokens": 3, "output_tokens": 0}}}  # fmt: skip
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "fell over"}}
    frames = f"event: message_start\ndata: {json.dumps(start)}\n\n"
    frames += f"event: error\ndata: {json.dumps(error)}\n\n"
    backend.script(Turn(raw_chunks=[frames.encode()]))
    events = parse_sse(post(edge, simple(stream=True)).content)
    assert [name for name, _ in events] == ["message_start", "error"]
    assert edge.wait_idle() == 0


def test_team_keys(backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]) -> None:
    edge = edge_factory(backend_env(backend, CCGATE_API_KEYS="ana:key-ana-1,bo:key-bo-2"))
    assert post(edge, simple()).status_code == 401
    assert (
        post(edge, simple(), **{"x-api-key": "wrong"}).json()["error"]["type"]
        == "authentication_error"
    )
    assert post(edge, simple(), **{"x-api-key": "key-ana-1"}).status_code == 200
    assert post(edge, simple(), authorization="Bearer key-bo-2").status_code == 200
