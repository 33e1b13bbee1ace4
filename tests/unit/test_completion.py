"""A whole chat completion through the stream state machine: the same answer as its stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.completion import completion_chunk
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.openai_stream import OpenAIStreamDecoder
from ccgate.edge.translate.stream import StreamOptions, StreamTranslator
from tests.fakes.backend import Turn, openai_chunks, openai_message
from tests.sse_grammar import check_grammar

TOOLS = {
    "Bash": {"type": "object", "properties": {"command": {"type": "string"}}},
    "Read": {"type": "object", "properties": {"path": {"type": "string"}}},
}


def translator() -> StreamTranslator:
    return StreamTranslator(StreamOptions(model="claude-x", message_id="msg_1", tool_schemas=TOOLS))


def streamed(turn: Turn) -> dict[str, Any]:
    t = translator()
    decoder = OpenAIStreamDecoder(t, "fake")
    frames = "".join(f"data: {json.dumps(c)}\n\n" for c in openai_chunks(turn, "m"))
    events = t.start() + decoder.feed((frames + "data: [DONE]\n\n").encode()) + decoder.end()
    return assembled(events)


def whole(turn: Turn) -> dict[str, Any]:
    t = translator()
    raw = json.dumps(openai_message(turn, "m")).encode()
    return assembled(t.start() + t.feed(completion_chunk(raw, "fake")) + t.finish())


def assembled(events: list[Any]) -> dict[str, Any]:
    check_grammar(events)
    assembler = MessageAssembler()
    assembler.add(events)
    message = assembler.message
    for block in message["content"]:
        if block.get("type") == "tool_use":
            block["id"] = "toolu_x"  # fresh ids per translation, by design
        if block.get("type") == "thinking":
            block["signature"] = "sig"
    return message


CASES = [
    Turn(text="hello there"),
    Turn(text="", tool_calls=[("Bash", {"command": "ls"})]),
    Turn(text="two at once", tool_calls=[("Bash", {"command": "ls"}), ("Read", {"path": "a"})]),
    Turn(text="after thought", reasoning="let me think"),
    Turn(text="tagged", reasoning="inside tags", think_tags=True),
    Turn(text="text tools", tool_calls=[("Bash", {"command": "pwd"})], text_tool_calls=True),
    Turn(text="cut off", finish="length"),
    Turn(text="no usage", usage=None),
]


@pytest.mark.parametrize("turn", CASES, ids=range(len(CASES)))
def test_a_whole_answer_assembles_as_its_stream_does(turn: Turn) -> None:
    assert whole(turn) == streamed(turn)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=40),
    reasoning=st.text(max_size=20),
    think_tags=st.booleans(),
    calls=st.lists(
        st.tuples(
            st.sampled_from(["Bash", "Read"]),
            st.dictionaries(st.sampled_from(["command", "path"]), st.text(max_size=8), max_size=2),
        ),
        max_size=3,
    ),
)
def test_whole_and_streamed_agree_on_arbitrary_answers(
    text: str, reasoning: str, think_tags: bool, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    turn = Turn(text=text, reasoning=reasoning, think_tags=think_tags, tool_calls=calls)
    assert whole(turn) == streamed(turn)


def test_usage_and_model_are_taken_from_the_answer() -> None:
    message = whole(Turn(text="x", usage=(77, 9)))
    assert message["usage"]["input_tokens"] == 77 and message["usage"]["output_tokens"] == 9


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"<html>", "is not JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (b'{"choices": []}', "has no choices"),
        (b'{"object": "chat.completion"}', "has no choices"),
    ],
)
def test_a_shapeless_answer_is_an_api_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        completion_chunk(raw, "fake")
    assert caught.value.status == 500 and fragment in caught.value.message


def test_an_error_body_is_the_upstream_error() -> None:
    raw = json.dumps({"error": {"message": "model overloaded", "type": "server_error"}}).encode()
    with pytest.raises(ApiError) as caught:
        completion_chunk(raw, "fake")
    assert "overloaded" in caught.value.message


def test_legacy_function_call_becomes_a_tool_call() -> None:
    body = {
        "choices": [
            {
                "message": {"function_call": {"name": "Bash", "arguments": '{"command":"ls"}'}},
                "finish_reason": "function_call",
            }
        ]
    }
    t = translator()
    events = t.start() + t.feed(completion_chunk(json.dumps(body).encode(), "fake")) + t.finish()
    message = assembled(events)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0]["input"] == {"command": "ls"}
