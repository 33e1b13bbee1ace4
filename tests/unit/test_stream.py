"""The OpenAI → Anthropic stream state machine, on golden cases and on arbitrary chunkings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.jsonfix import INVALID_KEY, parse_arguments
from ccgate.edge.translate.request import to_openai
from ccgate.edge.translate.stream import StreamOptions, StreamTranslator
from ccgate.edge.translate.target import Quirks, Target
from ccgate.edge.translate.thinking import starts_in_reasoning
from ccgate.edge.translate.tool_calls import TRUNCATED_KEY
from tests.fakes.backend import Turn
from tests.sse_grammar import check_grammar
from tests.unit.streams import TOOLS, final, run, stream_bytes


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
