"""The edge on a real port against a backend that fails: errors before the first byte and after it,
retries and fallbacks, stalls, silences and clients that hang up — each an Anthropic-shaped
answer, and no limiter slot left behind."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import Edge, anthropic_client, backend_env
from tests.edge_requests import MODEL, post, simple
from tests.fakes.backend import FakeBackend, Turn
from tests.sse_grammar import check_grammar, parse_sse


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
