"""The OpenAI → Anthropic stream state machine, on golden cases and on arbitrary chunkings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.jsonfix import INVALID_KEY, parse_arguments
from ccgate.edge.translate.stream import (
    Event,
    OpenAIStreamDecoder,
    StreamOptions,
    StreamTranslator,
)
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
