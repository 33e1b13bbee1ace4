"""tool_choice `any`/`tool`: the answer opens with the call, as Anthropic's does, even where the
backend's grammar lets the model talk first (llama.cpp's "required"); text with no call after
it is still delivered."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.openai_stream import OpenAIStreamDecoder
from ccgate.edge.translate.stream import Event, StreamOptions, StreamTranslator
from ccgate.edge.translate.tools import tool_forced
from tests.fakes.backend import Turn, openai_chunks
from tests.sse_grammar import check_grammar

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = {"get_weather": SCHEMA}
WEATHER = [("get_weather", {"city": "Paris"})]


def translate(turn: Turn, forced: bool, cut: int | None = None) -> tuple[list[Event], Any]:
    frames = [f"data: {json.dumps(c)}\n\n" for c in openai_chunks(turn, "m")]
    data = ("".join(frames) + "data: [DONE]\n\n").encode()
    options = StreamOptions(model="claude-x", tool_schemas=TOOLS, tool_forced=forced)
    translator = StreamTranslator(options)
    decoder = OpenAIStreamDecoder(translator, "fake")
    events = translator.start()
    at = len(data) // 2 if cut is None else cut
    events += decoder.feed(data[:at]) + decoder.feed(data[at:]) + decoder.end()
    check_grammar(events)
    assembler = MessageAssembler()
    assembler.add(events)
    return events, assembler.message


def test_text_before_a_forced_call_is_dropped() -> None:
    turn = Turn(text="Let me check the weather for you.", tool_calls=WEATHER)
    _, message = translate(turn, forced=True)
    assert [b["type"] for b in message["content"]] == ["tool_use"]
    assert message["content"][0]["input"] == {"city": "Paris"}
    assert message["stop_reason"] == "tool_use"


def test_without_forcing_the_text_stays() -> None:
    turn = Turn(text="Let me check the weather for you.", tool_calls=WEATHER)
    _, message = translate(turn, forced=False)
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]


def test_text_with_no_call_after_it_is_the_answer() -> None:
    _, message = translate(Turn(text="I cannot call that.", finish="length"), forced=True)
    assert message["content"] == [{"type": "text", "text": "I cannot call that."}]
    assert message["stop_reason"] == "max_tokens"


def test_a_call_written_as_text_is_forced_too() -> None:
    text = 'Sure. <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    _, message = translate(Turn(text=text), forced=True)
    assert [b["type"] for b in message["content"]] == ["tool_use"]
    assert message["content"][0]["input"] == {"city": "Oslo"}


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=4000))
def test_any_chunking_gives_the_same_forced_answer(cut: int) -> None:
    turn = Turn(text="Checking now.", tool_calls=WEATHER)
    _, whole = translate(turn, forced=True)
    _, split = translate(turn, forced=True, cut=cut)

    def blocks(message: Any) -> list[dict[str, Any]]:  # ids are new each time
        return [{k: v for k, v in b.items() if k != "id"} for b in message["content"]]

    assert (
        blocks(split)
        == blocks(whole)
        == [{"type": "tool_use", "name": "get_weather", "input": {"city": "Paris"}}]
    )


def test_which_requests_force_a_call() -> None:
    tools = [{"name": "get_weather", "input_schema": SCHEMA}]
    assert tool_forced({"tools": tools, "tool_choice": {"type": "any"}})
    assert tool_forced({"tools": tools, "tool_choice": {"type": "tool", "name": "get_weather"}})
    assert not tool_forced({"tools": tools, "tool_choice": {"type": "auto"}})
    assert not tool_forced({"tools": tools})
    assert not tool_forced({"tool_choice": {"type": "any"}})  # nothing to call
