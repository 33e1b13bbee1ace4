"""The OTLP exporter over the wire: `ccgate serve` in a process of its own exports to a real
OTLP receiver (HTTP/protobuf and gRPC), and what the receiver gets is counted — one trace and
one SERVER span per request, the backend's traceparent a descendant of it, no span for the
probes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import backend_env
from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.otlp import OtlpGrpcReceiver, OtlpHttpReceiver
from tests.fakes.server import free_port
from tests.integration.test_telemetry import body


@contextmanager
def served_edge(env: dict[str, str]) -> Iterator[str]:
    """`ccgate serve` in a process of its own; on leaving, it is stopped, which flushes its
    span exporter — so the receiver then holds every span the requests made."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ccgate.cli", "serve", "--port", str(port)],
        env={**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "100", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otlp_exporter_over_the_wire(backend: FakeBackend, protocol: str) -> None:
    receiver = OtlpGrpcReceiver() if protocol == "grpc" else OtlpHttpReceiver()
    with receiver:
        env = {
            **backend_env(backend),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_SERVICE_NAME": "ccgate-test",
        }
        with served_edge(env) as url:
            backend.script(Turn(text="over the wire"))
            assert httpx.post(url + "/v1/messages", json=body(stream=True)).status_code == 200
    names = {span.name for _, span in receiver.spans}
    assert {"POST /v1/messages", "limiter.admit", "chat fake-model"} <= names
    assert {service for service, _ in receiver.spans} == {"ccgate-test"}
    chat = next(s for _, s in receiver.spans if s.name == "chat fake-model")
    attributes = {a.key for a in chat.attributes}
    assert {
        "gen_ai.provider.name",
        "gen_ai.usage.output_tokens",
        "gen_ai.response.finish_reasons",
    } <= attributes


def _attrs(span: Any) -> dict[str, Any]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


def test_one_trace_with_one_server_span_per_request_over_the_wire(backend: FakeBackend) -> None:
    """Everything the receiver gets, counted: each request is exactly one trace with exactly
    one SERVER span (HTTP attributes and ccgate's together), the backend's traceparent is a
    descendant of it, and the probes leave no span at all."""
    incoming = "4bf92f3577b34da6a3ce929d0e0e4736"
    with OtlpHttpReceiver() as receiver:
        env = {**backend_env(backend), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        with served_edge(env) as url:
            for path in ("/healthz", "/readyz", "/metrics"):
                assert httpx.get(url + path).status_code == 200
            backend.script(Turn(text="one"), Turn(text="two"), Turn(text="three"))
            session = {"x-claude-code-session-id": "sess-9"}
            for request_body, headers in (
                (body(), session),
                (body(stream=True), session),
                (body(), {"traceparent": f"00-{incoming}-00f067aa0ba902b7-01"}),
            ):
                response = httpx.post(url + "/v1/messages", json=request_body, headers=headers)
                assert response.status_code == 200
            counted = {"model": "claude-sonnet-4-8", "messages": [{"role": "user", "content": "x"}]}
            response = httpx.post(url + "/v1/messages/count_tokens", json=counted, headers=session)
            assert response.status_code == 200
    spans = [span for _, span in receiver.spans]
    traces: dict[bytes, list[Any]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    assert len(traces) == 4, sorted(s.name for s in spans)  # one per request, none for probes
    assert incoming in {trace_id.hex() for trace_id in traces}
    servers = []
    for members in traces.values():
        kinds = [s for s in members if s.kind == s.SPAN_KIND_SERVER]
        assert len(kinds) == 1, sorted(s.name for s in members)
        servers.append(kinds[0])
    for server in servers:
        attributes = _attrs(server)
        assert attributes["http.request.method"] == "POST"
        assert attributes["http.response.status_code"] == 200
        assert attributes["url.path"] in ("/v1/messages", "/v1/messages/count_tokens")
        assert "user.id" in attributes
        assert server.name == f"POST {attributes['http.route']}"
    assert sorted(s.name for s in servers) == ["POST /v1/messages"] * 3 + [
        "POST /v1/messages/count_tokens"
    ]
    sessions = [_attrs(s).get("session.id") for s in servers]
    assert sessions.count("sess-9") == 3
    # Each chat span hangs under its trace's server span; each upstream traceparent descends
    # from the server span of the same trace.
    by_id = {span.span_id: span for span in spans}
    server_ids = {server.span_id for server in servers}

    def ancestors(span_id: bytes) -> list[bytes]:
        chain = []
        while span_id in by_id:
            chain.append(span_id)
            span_id = by_id[span_id].parent_span_id
        return chain

    chats = [s for s in spans if s.name == "chat fake-model"]
    assert len(chats) == 3
    for chat in chats:
        assert by_id[chat.parent_span_id].kind == chat.SPAN_KIND_SERVER
        assert "gen_ai.usage.output_tokens" in _attrs(chat)
    assert len(backend.requests) == 3
    for sent in backend.requests:
        _, trace_id, parent_id, _ = sent.headers["traceparent"].split("-")
        chain = ancestors(bytes.fromhex(parent_id))
        assert chain and server_ids & set(chain)
        assert by_id[chain[0]].trace_id.hex() == trace_id
