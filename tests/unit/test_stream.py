"""The OpenAI → Anthropic stream state machine, on golden cases and on arbitrary chunkings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.edge.providers.table import PROVIDERS
from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.errors import ApiError, from_upstream
from ccgate.edge.translate.jsonfix import INVALID_KEY, parse_arguments
from ccgate.edge.translate.request import to_openai
from ccgate.edge.translate.stream import (
    Event,
    OpenAIStreamDecoder,
    StreamOptions,
    StreamTranslator,
)
from ccgate.edge.translate.target import Quirks, Target
from ccgate.edge.translate.thinking import starts_in_reasoning
from ccgate.edge.translate.tool_calls import TRUNCATED_KEY
from tests.fakes.backend import Turn, openai_chunks
from tests.sse_grammar import check_grammar

TOOLS = {"Bash": {"type": "object", "properties": {"command": {"type": "string"}}}}


def stream_bytes(turn: Turn) -> bytes:
    frames = [f"data: {json.dumps(c)}\n\n" for c in openai_chunks(turn, "m")]
    return ("".join(frames) + "data: [DONE]\n\n").encode()


def run(
    data: bytes, cuts: list[int] | None = None, tools: bool = True, think: bool = True
) -> list[Event]:
    options = StreamOptions(
        model="claude-x", tool_schemas=TOOLS if tools else None, think_tags=think
    )
    translator = StreamTranslator(options)
    decoder = OpenAIStreamDecoder(translator, "fake")
    events = translator.start()
    pieces, last = [], 0
    for cut in sorted(set(cuts or [])):
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.end()


def final(events: list[Event]) -> dict[str, Any]:
    assembler = MessageAssembler()
    assembler.add(events)
    return assembler.message


def test_text_and_reasoning_become_blocks_in_order() -> None:
    events = run(stream_bytes(Turn(text="Hello world", reasoning="Let me think")))
    check_grammar(events)
    message = final(events)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][0]["thinking"] == "Let me think"
    assert message["content"][0]["signature"]
    assert message["content"][1]["text"] == "Hello world"
    assert message["stop_reason"] == "end_turn"
    assert message["usage"] == {
        "input_tokens": 123,
        "output_tokens": 45,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def test_think_tags_in_content_become_a_thinking_block() -> None:
    message = final(
        run(stream_bytes(Turn(text="Answer", reasoning="inner", think_tags=True, chunk_size=3)))
    )
    assert [(b["type"], b.get("thinking") or b.get("text")) for b in message["content"]] == [
        ("thinking", "inner"),
        ("text", "Answer"),
    ]


def test_parallel_tool_calls_keep_their_own_blocks() -> None:
    turn = Turn(
        text="Running", tool_calls=[("Bash", {"command": "ls"}), ("Read", {"file_path": "/a"})]
    )
    events = run(stream_bytes(turn))
    check_grammar(events)
    message = final(events)
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "tool_use"]
    assert message["content"][1]["input"] == {"command": "ls"}
    assert message["content"][2]["input"] == {"file_path": "/a"}
    assert message["content"][1]["id"] != message["content"][2]["id"]
    assert message["stop_reason"] == "tool_use"


def test_interleaved_tool_call_deltas_are_not_mixed() -> None:
    chunks = [
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "a",
                                "function": {"name": "Bash", "arguments": '{"comm'},
                            }
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "b",
                                "function": {"name": "Read", "arguments": '{"file_'},
                            }
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'and": "ls"}'}}]}}
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 1, "function": {"arguments": 'path": "/x"}'}}]}}
            ]
        },
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    ]
    data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode()
    message = final(run(data))
    assert [b["input"] for b in message["content"]] == [{"command": "ls"}, {"file_path": "/x"}]


def test_text_written_tool_call_is_parsed_when_tools_were_offered() -> None:
    turn = Turn(
        text="Sure.",
        tool_calls=[("Bash", {"command": "echo hi"})],
        text_tool_calls=True,
        chunk_size=4,
    )
    message = final(run(stream_bytes(turn)))
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][1]["name"] == "Bash"
    assert message["content"][1]["input"] == {"command": "echo hi"}
    assert message["stop_reason"] == "tool_use"


def test_text_written_tool_call_stays_text_without_tools() -> None:
    turn = Turn(text="Sure.", tool_calls=[("Bash", {"command": "echo hi"})], text_tool_calls=True)
    message = final(run(stream_bytes(turn), tools=False))
    assert [b["type"] for b in message["content"]] == ["text"]
    assert "<tool_call>" in message["content"][0]["text"]


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "end_turn"),
    ],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    # "tool_calls" without any tool call is a backend quirk: nothing to run, so end_turn.
    message = final(run(stream_bytes(Turn(text="x", finish=finish))))
    assert message["stop_reason"] == expected


def test_stop_sequence_reported_when_backend_names_it() -> None:
    options = StreamOptions(model="m", stop_sequences=("END",))
    translator = StreamTranslator(options)
    events = translator.start()
    events += translator.feed({"choices": [{"delta": {"content": "abc"}}]})
    events += translator.feed(
        {"choices": [{"delta": {}, "finish_reason": "stop", "stop_reason": "END"}]}
    )
    message = final(events + translator.finish())
    assert message["stop_reason"] == "stop_sequence"
    assert message["stop_sequence"] == "END"


def test_truncated_stream_is_an_error_not_a_message() -> None:
    data = stream_bytes(Turn(text="Hello"))
    cut = data.index(b'"finish_reason": "stop"')
    cut = data.rfind(b"data:", 0, cut)
    with pytest.raises(ApiError) as info:
        run(data[:cut])
    assert info.value.type == "api_error"


def test_error_payload_mid_stream_raises() -> None:
    data = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"error":{"message":"overloaded"}}\n\n'
    with pytest.raises(ApiError) as info:
        run(data)
    assert info.value.type == "overloaded_error"


def test_missing_usage_falls_back_to_estimates() -> None:
    message = final(run(stream_bytes(Turn(text="Hello world, how are you", usage=None))))
    assert message["usage"]["output_tokens"] > 0


def test_broken_arguments_are_repaired_or_reported() -> None:
    assert parse_arguments('{"command": "ls -la') == ({"command": "ls -la"}, True)
    assert parse_arguments('{"a": [1, 2') == ({"a": [1, 2]}, True)
    assert parse_arguments("") == ({}, False)
    args, repaired = parse_arguments("not json at all")
    assert repaired and args == {INVALID_KEY: "not json at all"}


SAMPLE_TURNS = [
    Turn(text="Héllo wörld — ünïcode ✓ 你好", reasoning="think ✓ 🤔", chunk_size=3),
    Turn(text="a<b> and </think> x", reasoning="r", think_tags=True, chunk_size=2),
    Turn(
        text="Let me run it.",
        tool_calls=[("Bash", {"command": "cat f.txt"}), ("Bash", {"command": "ls"})],
    ),
    Turn(
        text="ok", tool_calls=[("Bash", {"command": "echo ✓"})], text_tool_calls=True, chunk_size=6
    ),
]


SAMPLE_STREAMS = [stream_bytes(turn) for turn in SAMPLE_TURNS]  # fixed bytes: same draws each run


@settings(max_examples=150, deadline=None)
@given(
    turn_index=st.integers(min_value=0, max_value=len(SAMPLE_TURNS) - 1),
    data=st.data(),
)
def test_any_chunking_of_the_byte_stream_gives_the_same_message(
    turn_index: int, data: st.DataObject
) -> None:
    raw = SAMPLE_STREAMS[turn_index]
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(raw) - 1), max_size=40))
    whole = final(run(raw))
    events = run(raw, cuts)
    check_grammar(events)
    split = final(events)
    for message in (whole, split):
        message.pop("id")
        for block in message["content"]:
            if block["type"] == "tool_use":
                block.pop("id")
    assert split == whole


# -- upstream context overflow → what Claude Code compacts on ---------------------------------

LLAMACPP_OVERFLOW = {
    "error": {
        "code": 400,
        "message": "request (8342 tokens) exceeds the available context size (4096 tokens), "
        "try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 8342,
        "n_ctx": 4096,
    }
}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        # llama.cpp tools/server: HTTP 400, type exceed_context_size_error, the two counts.
        (400, LLAMACPP_OVERFLOW, "prompt is too long: 8342 tokens > 4096 maximum"),
        (
            400,
            {
                "error": {
                    **LLAMACPP_OVERFLOW["error"],
                    "message": "the request exceeds the available context size, try increasing it",
                }
            },
            "prompt is too long: 8342 tokens > 4096 maximum",
        ),
        # vLLM (also behind NIM), flat and wrapped ErrorResponse.
        (
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 32768 tokens. However, you "
                "requested 40000 tokens (39000 in the messages, 1000 in the completion). Please "
                "reduce the length of the messages or completion.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
            "prompt is too long: 40000 tokens > 32768 maximum",
        ),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens. However, "
                    "your request has 9001 input tokens. Please reduce the length of the input "
                    "messages.",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            },
            "prompt is too long: 9001 tokens > 8192 maximum",
        ),
        # OpenRouter and DeepSeek word it the OpenAI way.
        (
            400,
            {
                "error": {
                    "message": "This endpoint's maximum context length is 163,840 tokens. "
                    "However, you requested about 201,000 tokens (190,000 of text input, 11,000 "
                    "in the output). Please reduce the length of either one, or use the "
                    '"middle-out" transform to compress your prompt automatically.',
                    "code": 400,
                }
            },
            "prompt is too long: 201000 tokens > 163840 maximum",
        ),
        # LM Studio's llama.cpp engine.
        (
            400,
            {
                "error": "Trying to keep the first 9500 tokens when context the overflows. "
                "However, the model is loaded with context length of only 4096 tokens, which is "
                "not enough. Try to load the model with a larger context length, or provide a "
                "shorter input"
            },
            "prompt is too long: 9500 tokens > 4096 maximum",
        ),
        # Ollama answers 500 and names no numbers.
        (
            500,
            {"error": {"message": "input exceeds context length", "type": "api_error"}},
            "prompt is too long: input exceeds context length",
        ),
    ],
)
def test_context_overflow_becomes_prompt_is_too_long(
    status: int, body: dict[str, Any], expected: str
) -> None:
    error = from_upstream(status, json.dumps(body).encode(), None, "p", "P_API_KEY")
    assert (error.status, error.type, error.message) == (400, "invalid_request_error", expected)


def test_an_output_budget_that_does_not_fit_is_not_a_long_prompt() -> None:
    body = {
        "error": {
            "message": "'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's "
            "maximum context length is 32768 tokens and your request has 1200 input tokens "
            "(32000 > 32768 - 1200).",
            "type": "BadRequestError",
            "code": 400,
        }
    }
    error = from_upstream(400, json.dumps(body).encode(), None, "vllm", "K")
    assert error.status == 400
    assert not error.message.startswith("prompt is too long")
    assert "CLAUDE_CODE_MAX_OUTPUT_TOKENS" in error.message


def test_overflow_inside_a_stream_is_prompt_is_too_long_too() -> None:
    with pytest.raises(ApiError) as info:
        run(f"data: {json.dumps(LLAMACPP_OVERFLOW)}\n\n".encode())
    assert info.value.message == "prompt is too long: 8342 tokens > 4096 maximum"


# -- structured output ------------------------------------------------------------------------

TITLE_FORMAT = {
    "type": "json_schema",
    "schema": {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
        "additionalProperties": False,
    },
}


def test_output_config_format_becomes_response_format() -> None:
    req = {
        "model": "m",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "name this session"}],
        "output_config": {"effort": "low", "format": TITLE_FORMAT},
    }
    body, _ = to_openai(req, Target("openrouter", "x", Quirks(reasoning_control="openrouter")))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": TITLE_FORMAT["schema"], "strict": True},
    }
    plain, _ = to_openai({**req, "output_config": {"effort": "low"}}, Target("p", "x", Quirks()))
    assert "response_format" not in plain


def test_output_format_on_a_backend_without_json_schema_is_a_clear_400() -> None:
    req = {
        "model": "m",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"format": TITLE_FORMAT},
    }
    deepseek = PROVIDERS["deepseek"]
    with pytest.raises(ApiError) as info:
        to_openai(req, Target("deepseek", "deepseek-chat", deepseek.quirks))
    assert info.value.status == 400
    assert "deepseek has no JSON-schema output mode" in info.value.message
    with pytest.raises(ApiError) as bad:
        to_openai(
            {**req, "output_config": {"format": {"type": "regex"}}}, Target("p", "x", Quirks())
        )
    assert "only 'json_schema'" in bad.value.message


# -- the round trip of OpenRouter's encrypted reasoning ---------------------------------------


def test_encrypted_reasoning_goes_back_to_openrouter_unchanged() -> None:
    item = {"type": "reasoning.encrypted", "data": "gAAAA", "id": "rs_1", "format": "x", "index": 0}
    translator = StreamTranslator(StreamOptions(model="m"))
    events = translator.start()
    events += translator.feed({"choices": [{"delta": {"reasoning_details": [item]}}]})
    events += translator.feed({"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]})
    message = final(events + translator.finish())
    req = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": "next"},
        ],
    }
    body, _ = to_openai(req, Target("openrouter", "x", Quirks(reasoning_control="openrouter")))
    assert body["messages"][1]["reasoning_details"] == [item]
    other, _ = to_openai(req, Target("p", "x", Quirks()))
    assert "reasoning_details" not in other["messages"][1]


# -- a whole non-streaming completion goes through the same rules -----------------------------


def completion(message: dict[str, Any], finish: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        **extra,
    }


@pytest.mark.parametrize(
    ("body", "blocks", "stop"),
    [
        (
            completion(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "a",
                            "type": "function",
                            "function": {"name": "Read", "arguments": '{"file_path": "/a"}'},
                        },
                        {
                            "index": 0,
                            "id": "b",
                            "type": "function",
                            "function": {"name": "Read", "arguments": '{"file_path": "/b"}'},
                        },
                    ],
                },
                "tool_calls",
            ),
            [("tool_use", {"file_path": "/a"}), ("tool_use", {"file_path": "/b"})],
            "tool_use",
        ),
        (
            completion(
                {
                    "role": "assistant",
                    "content": "Answer.",
                    "reasoning_details": [{"type": "reasoning.summary", "summary": "Plan."}],
                },
                "stop",
            ),
            [("thinking", "Plan."), ("text", "Answer.")],
            "end_turn",
        ),
        (
            completion(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "w",
                            "type": "function",
                            "function": {"name": "Write", "arguments": '{"file_path": "/x", "con'},
                        }
                    ],
                },
                "length",
            ),
            [("tool_use", {TRUNCATED_KEY: '{"file_path": "/x", "con'})],
            "max_tokens",
        ),
    ],
)
def test_a_whole_completion_fed_as_one_chunk(
    body: dict[str, Any], blocks: list[tuple[str, Any]], stop: str
) -> None:
    translator = StreamTranslator(StreamOptions(model="m", tool_schemas=TOOLS))
    message = final(translator.start() + translator.feed(body) + translator.finish())
    got = [
        (b["type"], b.get("input", b.get("thinking", b.get("text")))) for b in message["content"]
    ]
    assert got == blocks
    assert message["stop_reason"] == stop


@pytest.mark.parametrize(
    "body",
    [
        completion({"role": "assistant", "content": "half"}, "error"),
        {"error": {"message": "boom"}, "choices": [{"message": {"content": ""}}]},
        {"object": "error", "message": "boom", "type": "InternalServerError", "code": 500},
    ],
)
def test_a_failed_completion_raises(body: dict[str, Any]) -> None:
    translator = StreamTranslator(StreamOptions(model="m"))
    with pytest.raises(ApiError):
        translator.feed(body)


def test_a_late_close_tag_is_dropped_and_calls_before_it_are_not_run() -> None:
    # An unknown model whose template opened <think>: the reasoning was already sent as text,
    # but the tag never reaches the user and a call written in it is given back as text.
    raw = (
        'I might run <tool_call>{"name": "Bash", "arguments": {"command": "rm -rf x"}}'
        "</tool_call> but no.</think>\n\nDone."
    )
    message = final(
        run(
            f"data: {json.dumps({'choices': [{'delta': {'content': raw}}]})}\n\n"
            "data: [DONE]\n\n".encode()
        )
    )
    assert [b["type"] for b in message["content"]] == ["text"]
    assert "</think>" not in message["content"][0]["text"]
    assert "Done." in message["content"][0]["text"]
    assert message["stop_reason"] == "end_turn"


def test_models_whose_template_opens_think() -> None:
    assert starts_in_reasoning("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", False)
    assert starts_in_reasoning("Qwen/QwQ-32B", False)
    assert starts_in_reasoning("zai-org/GLM-4.6", True)
    assert not starts_in_reasoning("zai-org/GLM-4.6", False)
    assert not starts_in_reasoning("qwen2.5-coder:7b", True)
