"""Splitters, errors, savers, routing and token counting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccgate.edge.routing import Router, RoutingError
from ccgate.edge.savers import command_prefix, local_answer, title_for
from ccgate.edge.translate.errors import from_upstream, parse_retry_after
from ccgate.edge.translate.text_tools import TextPiece, TextToolParser, ToolPiece
from ccgate.edge.translate.thinking import ThinkSplitter
from ccgate.edge.translate.tokens import count_tokens, estimate_tokens
from ccgate.shared.settings import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures"


def split_all(text: str, cuts: list[int]) -> list[tuple[str, str]]:
    splitter = ThinkSplitter()
    out: list[tuple[str, str]] = []
    last = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        out += splitter.feed(text[last:cut])
        last = cut
    out += splitter.flush()
    merged: list[tuple[str, str]] = []
    for kind, piece in out:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + piece)
        else:
            merged.append((kind, piece))
    return merged


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_think_tags_split_anywhere(cuts: list[int]) -> None:
    text = "<think>plan <b> it</think>The answer <thi is 4"
    assert split_all(text, cuts) == [("thinking", "plan <b> it"), ("text", "The answer <thi is 4")]


def test_unclosed_think_ends_as_thinking() -> None:
    assert split_all("<think>never closed", [3, 9]) == [("thinking", "never closed")]


def parse_text_tools(text: str, size: int) -> list[object]:
    parser = TextToolParser(
        {"Write": {"properties": {"content": {"type": "string"}, "n": {"type": "integer"}}}}
    )
    out: list[object] = []
    for i in range(0, len(text), size):
        out += parser.feed(text[i : i + size])
    return out + parser.flush()


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_text_tool_formats(size: int) -> None:
    hermes = 'Hi <tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
    assert parse_text_tools(hermes, size)[-1] == ToolPiece("Bash", {"command": "ls"})
    qwen = "<function=Write>\n<parameter=content>\n123\n</parameter>\n<parameter=n>\n7\n</parameter>\n</function>"
    assert parse_text_tools(qwen, size) == [ToolPiece("Write", {"content": "123", "n": 7})]
    mistral = '[TOOL_CALLS][{"name": "Bash", "arguments": {"command": "pwd"}}]'
    assert parse_text_tools(mistral, size) == [ToolPiece("Bash", {"command": "pwd"})]
    mistral2 = '[TOOL_CALLS]Bash[ARGS]{"command": "id"}'
    assert parse_text_tools(mistral2, size) == [ToolPiece("Bash", {"command": "id"})]
    broken = "<tool_call>{not json</tool_call>"
    texts = "".join(p.text for p in parse_text_tools(broken, size) if isinstance(p, TextPiece))
    assert texts == broken  # never dropped


def test_upstream_errors_map_for_claude_code() -> None:
    e = from_upstream(
        429, b'{"error":{"message":"slow down"}}', "7", "nvidia_nim", "NVIDIA_NIM_API_KEY"
    )
    assert (e.status, e.type, e.retry_after, e.headers()) == (
        429,
        "rate_limit_error",
        7.0,
        {"retry-after": "7"},
    )
    e = from_upstream(401, b"bad key sk-123", None, "openrouter", "OPENROUTER_API_KEY")
    assert e.status == 502 and "OPENROUTER_API_KEY" in e.message and "sk-123" not in e.message
    e = from_upstream(
        400,
        b'{"error":{"message":"This model\'s maximum context length is 131072 tokens. However, you requested 250000 tokens"}}',
        None,
        "p",
        "K",
    )
    assert e.message == "prompt is too long: 250000 tokens > 131072 maximum"
    assert from_upstream(503, b"", None, "p", "K").type == "overloaded_error"
    assert from_upstream(500, b"", None, "p", "K").type == "api_error"
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_savers_answer_claude_code_side_requests() -> None:
    settings = Settings.from_env(None)
    title_req = json.loads((FIXTURES / "side_request_title.json").read_text())["body"]
    name, text = local_answer(title_req, settings) or ("", "")
    assert name == "title" and json.loads(text) == {"title": "Run echo hi with bash"}
    probe = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}
    assert local_answer(probe, settings) == ("quota_probe", "Quota check passed.")
    prefix = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "<policy_spec>...</policy_spec>\nCommand: git status -s\n"}
        ],
    }
    assert local_answer(prefix, settings) == ("command_prefix", "git status")
    main = json.loads((FIXTURES / "main_loop_first_request.json").read_text())["body"]
    assert local_answer(main, settings) is None
    off = Settings.from_env(None, enable_title_generation_skip=False)
    assert local_answer(title_req, off) is None
    assert command_prefix("rm -rf / ; echo") == "command_injection_detected"
    assert command_prefix("ls -la") == "ls"
    assert (
        title_for("<session>\nfix the login bug please now today\n</session>")
        == "Fix the login bug please now"
    )


def test_routing_by_family_direct_and_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_OPUS", "nvidia_nim/big,openrouter/backup")
    monkeypatch.setenv("MODEL_HAIKU", "ollama/small")
    router = Router(Settings.from_env(None))
    opus = router.resolve("claude-opus-4-8")
    assert [(r.provider, r.model) for r in opus.routes] == [
        ("nvidia_nim", "big"),
        ("openrouter", "backup"),
    ]
    assert router.resolve("claude-haiku-4-5").routes[0].model == "small"
    assert router.resolve("claude-sonnet-4-5").routes[0].provider == "ollama"  # falls back to MODEL
    assert router.resolve("deepseek/deepseek-chat").routes[0].provider == "deepseek"
    assert router.resolve("open_router/x/y").routes[0].model == "x/y"
    monkeypatch.setenv("MODEL_SONNET", "nowhere/x")
    with pytest.raises(RoutingError, match="MODEL_SONNET"):
        Router(Settings.from_env(None))


def test_token_count_is_close_to_the_estimate_on_claude_code_requests() -> None:
    for name in ("main_loop_first_request.json", "tool_result_followup_request.json"):
        raw = (FIXTURES / name).read_bytes()
        body = json.loads(raw)["body"]
        exact = count_tokens(body)
        size = len(json.dumps(body, separators=(",", ":")).encode())
        assert exact > 500
        assert 0.6 < estimate_tokens(size) / exact < 1.6


def test_json_logs_carry_trace_and_span_ids() -> None:
    import io
    import logging

    from opentelemetry.sdk.trace import TracerProvider

    from ccgate.shared.logging import JsonFormatter
    from ccgate.shared.telemetry import TraceIdFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceIdFilter())
    logger = logging.getLogger("ccgate.test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        logger.info("inside %s", "a span")
    logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "inside a span"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
