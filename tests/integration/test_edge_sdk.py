"""The edge on a real port, a scripted backend on another, the official anthropic SDK as judge."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import Edge, anthropic_client, backend_env
from tests.fakes.backend import FakeBackend, Turn
from tests.sse_grammar import check_grammar, parse_sse

MODEL = "claude-sonnet-4-8"
TOOLS: list[Any] = [
    {
        "name": "Bash",
        "description": "run",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
    {
        "name": "Read",
        "description": "read",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
    },
]


def post(edge: Edge, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(edge.url + "/v1/messages?beta=true", json=body, headers=headers, timeout=30)


def simple(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


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
    ("status", "headers", "body", "expect_status", "expect_type"),
    [
        (429, {"retry-after": "3"}, {"error": {"message": "slow"}}, 429, "rate_limit_error"),
        (503, {}, {"error": {"message": "down"}}, 529, "overloaded_error"),
        (500, {}, {"error": {"message": "boom"}}, 500, "api_error"),
        (401, {}, {"error": {"message": "bad key"}}, 502, "api_error"),
        (
            400,
            {},
            {
                "error": {
                    "message": "maximum context length is 8192 tokens, you requested 9000 tokens"
                }
            },
            400,
            "invalid_request_error",
        ),
        (404, {}, {"error": {"message": "no such model"}}, 404, "not_found_error"),
    ],
)
def test_upstream_errors_before_the_first_byte(
    backend: FakeBackend,
    edge_factory: Callable[[dict[str, str]], Edge],
    status: int,
    headers: dict[str, str],
    body: dict[str, Any],
    expect_status: int,
    expect_type: str,
) -> None:
    # A short queue deadline: the gateway may not wait out the 429 itself.
    edge = edge_factory(backend_env(backend, LIMITER_QUEUE_TIMEOUT="0.5"))
    backend.script(Turn(status=status, headers=headers, error_body=body))
    with anthropic_client(edge.url) as client, pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    error = info.value
    assert error.status_code == expect_status
    assert error.body["error"]["type"] == expect_type  # type: ignore[index]
    if status == 429:
        assert error.response.headers["retry-after"] == "3"
    if status == 401:
        assert (
            "OPENAI_COMPAT_API_KEY" in error.message and "sk-provider-secret" not in error.message
        )
    if status == 400:
        assert "prompt is too long: 9000 tokens > 8192 maximum" in error.message
    assert edge.wait_idle() == 0


def test_upstream_429_is_retried_inside_the_gateway(backend: FakeBackend, edge: Edge) -> None:
    backend.script(Turn(status=429, headers={"retry-after": "1"}), Turn(text="finally"))
    started = time.monotonic()
    with anthropic_client(edge.url) as client:
        message = client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert message.content[0].text == "finally"  # type: ignore[union-attr]
    assert time.monotonic() - started >= 0.9  # the provider's pause was honoured
    assert len(backend.requests) == 2


def test_fallback_chain_before_first_byte(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    with FakeBackend() as second:
        env = backend_env(
            backend,
            MODEL="openai_compat/first,llamacpp/second",
            LLAMACPP_BASE_URL=second.url + "/v1",
        )
        edge = edge_factory(env)
        backend.script(Turn(status=503))
        second.script(Turn(text="from the fallback"))
        with anthropic_client(edge.url) as client:
            message = client.messages.create(
                model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        assert message.content[0].text == "from the fallback"  # type: ignore[union-attr]
        assert second.requests[0].body["model"] == "second"


def test_refused_backend_is_not_retried_and_names_the_setting(
    edge_factory: Callable[[dict[str, str]], Edge],
) -> None:
    from tests.fakes.server import free_port

    edge = edge_factory(
        {
            "MODEL": "llamacpp/x",
            "LLAMACPP_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
            "LIMITER_QUEUE_TIMEOUT": "0.5",
        }
    )
    response = post(edge, simple())
    # Nothing listens there: a 503 Claude Code does not retry (see ccgate.edge.probe).
    assert response.status_code == 503 and response.headers["x-should-retry"] == "false"
    assert "LLAMACPP_BASE_URL" in response.json()["error"]["message"]


def test_error_mid_stream_is_an_sse_error_event(edge: Edge, backend: FakeBackend) -> None:
    backend.script(
        Turn(text="partial answer", stream_error={"error": {"message": "model crashed"}})
    )
    response = post(edge, simple(stream=True))
    events = parse_sse(response.content)
    check_grammar(events, allow_error=True)
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "overloaded_error"
    assert not any(name == "message_stop" for name, _ in events)
    assert edge.wait_idle() == 0


def test_dropped_stream_is_an_error_and_non_stream_is_an_error_status(
    edge: Edge, backend: FakeBackend
) -> None:
    backend.script(
        Turn(text="a long answer that gets cut", drop_after=3), Turn(text="again cut", drop_after=2)
    )
    events = parse_sse(post(edge, simple(stream=True)).content)
    assert events[-1][0] == "error"
    response = post(edge, simple())
    assert response.status_code == 500 and response.json()["type"] == "error"
    assert edge.wait_idle() == 0


@pytest.mark.parametrize("stream", [True, False])
def test_stall_past_first_byte_timeout(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge], stream: bool
) -> None:
    # A non-streaming upstream call sends nothing before the whole answer: it is allowed
    # HTTP_FIRST_BYTE_TIMEOUT + HTTP_READ_TIMEOUT.
    timeouts = {"HTTP_FIRST_BYTE_TIMEOUT": "0.5", "HTTP_READ_TIMEOUT": "0.5"}
    edge = edge_factory(backend_env(backend, LIMITER_QUEUE_TIMEOUT="0.2", **timeouts))
    backend.script(Turn(text="late", stall=3))
    started = time.monotonic()
    response = post(edge, simple(stream=stream))
    assert response.status_code == 529 and time.monotonic() - started < 3
    assert edge.wait_idle() == 0


def test_pings_while_backend_is_silent(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(backend_env(backend, PING_INTERVAL="0.2"))
    backend.script(Turn(text="slow", stall_after_first=0.7))
    events = parse_sse(post(edge, simple(stream=True)).content)
    check_grammar(events)
    assert any(name == "ping" for name, _ in events)


def test_client_disconnect_cancels_upstream_and_frees_the_slot(
    edge: Edge, backend: FakeBackend
) -> None:
    backend.script(Turn(text="x" * 400, chunk_size=1, delay=0.05))
    with httpx.stream(
        "POST", edge.url + "/v1/messages", json=simple(stream=True), timeout=10
    ) as response:
        for _ in response.iter_bytes():
            break
    deadline = time.monotonic() + 3
    while backend.open_streams and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.open_streams == 0
    assert edge.wait_idle() == 0


@pytest.mark.parametrize("stream", [True, False])
def test_a_hang_up_before_the_answer_starts_frees_the_slot_at_once(
    edge: Edge, backend: FakeBackend, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The client leaves while the backend has not answered yet (a long prefill): the slot is
    freed then, not when the backend's answer finally comes, and no error is logged for it."""
    server_log = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not propagate
    server_log.addHandler(caplog.handler)
    try:
        backend.script(Turn(text="late", stall=3.0))
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(edge.url + "/v1/messages", json=simple(stream=stream), timeout=0.4)
        assert edge.wait_idle(timeout=2.0) == 0  # long before the backend's 3 s stall ends
    finally:
        server_log.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


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
