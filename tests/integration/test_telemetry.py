"""Traces, metrics and logs: the span tree of real requests through the edge, failed tool calls
linked back to the turn that made them, and no secret in any output. The OTLP exporter over
the wire: test_telemetry_wire.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import Edge, backend_env
from tests.fakes.backend import FakeBackend, Turn

EXPORTER = InMemorySpanExporter()
TOOLS = [
    {
        "name": "Bash",
        "description": "run",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[ReadableSpan]]]:
    # The edge instruments its HTTP clients only when tracing is configured.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    EXPORTER.clear()

    def finished() -> list[ReadableSpan]:
        time.sleep(0.2)  # spans end when the stream closes, just after the client has read it
        return list(EXPORTER.get_finished_spans())

    yield finished


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-8",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "go"}],
        **extra,
    }


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_span_tree_of_a_streamed_tool_turn_and_the_failed_call_that_follows(
    backend: FakeBackend,
    edge_factory: Callable[[dict[str, str]], Edge],
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    edge = edge_factory(backend_env(backend))
    backend.script(
        Turn(text="running", tool_calls=[("Bash", {"command": "false"})]), Turn(text="it failed")
    )
    first = httpx.post(
        edge.url + "/v1/messages",
        json=body(
            stream=True,
            tools=TOOLS,
            metadata={"user_id": '{"device_id": "dev-ana", "session_id": "sess-1"}'},
        ),
    )
    assert first.status_code == 200
    tool_id = first.text.split('"id":"toolu_')[1].split('"')[0]
    tool_id = "toolu_" + tool_id
    recorded = spans()
    server = by_name(recorded, "POST /v1/messages")[0]
    chat = by_name(recorded, "chat fake-model")[0]
    admit = by_name(recorded, "limiter.admit")[0]
    assert server.kind == SpanKind.SERVER and chat.kind == SpanKind.CLIENT
    assert chat.parent is not None and chat.parent.span_id == server.context.span_id
    assert admit.parent is not None and admit.parent.span_id == server.context.span_id
    http = [
        s for s in recorded if s.parent is not None and s.parent.span_id == chat.context.span_id
    ]
    assert http and http[0].kind == SpanKind.CLIENT  # the HTTP client span under the chat span
    attrs = chat.attributes or {}
    assert attrs["gen_ai.provider.name"] == "openai_compat"
    assert attrs["gen_ai.request.model"] == "fake-model"
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.usage.input_tokens"] == 123 and attrs["gen_ai.usage.output_tokens"] == 45
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("tool_use",)
    events = {e.name: e for e in chat.events}
    assert "gen_ai.first_token" in events and "gen_ai.stream.end" in events
    assert (events["gen_ai.tool.call"].attributes or {})["gen_ai.tool.call.id"] == tool_id
    assert (server.attributes or {})["user.id"] == "dev-ana"
    assert (server.attributes or {})["session.id"] == "sess-1"
    # The backend was sent a traceparent of this very trace.
    sent = backend.requests[0].headers["traceparent"]
    assert sent.split("-")[1] == format(server.context.trace_id, "032x")

    EXPORTER.clear()
    follow = body(
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Bash",
                        "input": {"command": "false"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": "Exit code 1 SECRET-OUTPUT",
                        "is_error": True,
                    }
                ],
            },
        ],
    )
    assert httpx.post(edge.url + "/v1/messages", json=follow).status_code == 200
    second = by_name(spans(), "POST /v1/messages")[0]
    assert (second.attributes or {})["ccgate.tool_error"] is True
    failure = next(e for e in second.events if e.name == "ccgate.tool_error")
    assert (failure.attributes or {})["gen_ai.tool.name"] == "Bash"
    assert (failure.attributes or {})["gen_ai.tool.call.id"] == tool_id
    assert "ccgate.tool.error_text" not in (failure.attributes or {})  # content capture is off
    assert [link.context.span_id for link in second.links] == [chat.context.span_id]


def test_fallback_and_429_retry_are_their_own_spans(
    backend: FakeBackend,
    edge_factory: Callable[[dict[str, str]], Edge],
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    with FakeBackend() as second:
        edge = edge_factory(
            backend_env(
                backend,
                MODEL="openai_compat/first,llamacpp/second",
                LLAMACPP_BASE_URL=second.url + "/v1",
            )
        )
        backend.script(Turn(status=503))
        second.script(Turn(status=429, headers={"retry-after": "0"}), Turn(text="third time"))
        assert httpx.post(edge.url + "/v1/messages", json=body(), timeout=30).status_code == 200
    recorded = spans()
    chats = sorted(
        by_name(recorded, "chat first") + by_name(recorded, "chat second"),
        key=lambda s: s.start_time or 0,
    )
    assert [(s.name, s.status.status_code) for s in chats] == [
        ("chat first", StatusCode.ERROR),
        ("chat second", StatusCode.ERROR),
        ("chat second", StatusCode.UNSET),
    ]
    assert [(s.attributes or {})["ccgate.attempt"] for s in chats] == [1, 2, 3]
    assert (chats[0].attributes or {})["error.type"] == "overloaded_error"
    assert (chats[1].attributes or {})["error.type"] == "rate_limit_error"
    assert len(by_name(recorded, "limiter.admit")) == 3


def test_client_disconnect_is_marked_not_an_error(
    edge: Edge, backend: FakeBackend, spans: Callable[[], list[ReadableSpan]]
) -> None:
    backend.script(Turn(text="x" * 300, chunk_size=1, delay=0.02))
    with httpx.stream("POST", edge.url + "/v1/messages", json=body(stream=True)) as response:
        for _ in response.iter_bytes():
            break
    time.sleep(0.5)
    chat = by_name(spans(), "chat fake-model")[0]
    assert (chat.attributes or {})["ccgate.client_disconnected"] is True
    assert chat.status.status_code != StatusCode.ERROR


def test_incoming_traceparent_is_honoured(
    edge: Edge, spans: Callable[[], list[ReadableSpan]]
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    assert httpx.post(edge.url + "/v1/messages", json=body(), headers=headers).status_code == 200
    server = by_name(spans(), "POST /v1/messages")[0]
    assert format(server.context.trace_id, "032x") == trace_id


def test_upstream_error_sets_error_status(
    backend: FakeBackend,
    edge_factory: Callable[[dict[str, str]], Edge],
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    edge = edge_factory(backend_env(backend, LIMITER_QUEUE_TIMEOUT="0.2"))
    backend.script(Turn(status=500))
    assert httpx.post(edge.url + "/v1/messages", json=body()).status_code == 500
    server = by_name(spans(), "POST /v1/messages")[0]
    assert server.status.status_code == StatusCode.ERROR
    assert (server.attributes or {})["error.type"] == "api_error"


def test_metrics_exposition(edge: Edge, backend: FakeBackend) -> None:
    backend.script(Turn(text="hi"))
    assert httpx.post(edge.url + "/v1/messages", json=body()).status_code == 200
    text = httpx.get(edge.url + "/metrics").text
    for name in (
        "ccgate_requests_total",
        "ccgate_request_duration_seconds",
        "ccgate_time_to_first_token_seconds",
        "ccgate_tokens_total",
        "ccgate_limiter_admissions_total",
        "ccgate_limiter_wait_seconds",
        "ccgate_limiter_in_flight",
        "ccgate_limiter_queue_depth",
    ):
        assert name in text
    assert 'ccgate_requests_total{model="fake-model",provider="openai_compat",status="200"}' in text


# -- secrets ---------------------------------------------------------------------------------
PROVIDER_KEY = "sk-provider-PLANTED-7f3a"
USER_KEY = "sk-user-PLANTED-91bc"
BOT_TOKEN = "123456:PLANTED-bot-token-x9"


def test_planted_secrets_never_leave(
    backend: FakeBackend,
    edge_factory: Callable[[dict[str, str]], Edge],
    spans: Callable[[], list[ReadableSpan]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    edge = edge_factory(
        backend_env(
            backend,
            OPENAI_COMPAT_API_KEY=PROVIDER_KEY,
            CCGATE_API_KEYS=f"ana:{USER_KEY}",
            TELEGRAM_BOT_TOKEN=BOT_TOKEN,
            LIMITER_QUEUE_TIMEOUT="0.2",
        )
    )
    auth = {"x-api-key": USER_KEY}
    outputs: list[str] = []
    backend.script(
        Turn(status=401, error_body={"error": {"message": f"bad key {PROVIDER_KEY}"}}),
        Turn(status=429, headers={"retry-after": "1"}),
        Turn(status=500),
        Turn(text="fine", stream_error={"error": {"message": "mid-stream"}}),
        Turn(text="ok", tool_calls=[("Bash", {"command": "ls"})]),
    )
    for request in (
        {"json": body()},
        {"json": body()},
        {"json": body()},
        {"json": body(stream=True)},
        {"json": body(tools=TOOLS)},
        {"content": b"{broken"},
        {"json": {"model": "m"}},
    ):
        response = httpx.post(edge.url + "/v1/messages", headers=auth, **request)  # type: ignore[arg-type]
        outputs.append(response.text + str(dict(response.headers)))
    for wrong in ({"x-api-key": "sk-wrong"}, {"authorization": f"Bearer {USER_KEY}x"}, {}):
        outputs.append(httpx.post(edge.url + "/v1/messages", headers=wrong, json=body()).text)
    outputs.append(httpx.get(edge.url + "/metrics").text)
    outputs.append(httpx.get(edge.url + "/ccgate/limiter", headers=auth).text)
    for span in spans():
        outputs.append(str(span.to_json()))
    outputs.extend(record.getMessage() for record in caplog.records)
    everything = "\n".join(outputs)
    assert "sk-wrong" not in everything
    for secret in (PROVIDER_KEY, USER_KEY, BOT_TOKEN):
        assert secret not in everything
    assert "bad key" not in everything  # the upstream's 401 text is not echoed either
