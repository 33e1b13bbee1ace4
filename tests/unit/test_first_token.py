"""The first token goes out on its own: a read holding many frames is split after the first
content event, and the split changes nothing in what the client assembles."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.edge.translate.openai_stream import OpenAIStreamDecoder
from ccgate.edge.translate.stream import Event, StreamOptions, StreamTranslator
from tests.fakes.backend import Turn
from tests.unit.streams import TOOLS, run, stream_bytes

TURN = Turn(text="Hello there, this is a longer answer in many chunks.", chunk_size=4)


def decoder() -> OpenAIStreamDecoder:
    return OpenAIStreamDecoder(StreamTranslator(StreamOptions(model="claude-x")), "fake")


def test_a_whole_answer_in_one_read_gives_the_first_token_first() -> None:
    data = stream_bytes(TURN)
    batches = decoder().feed_first(data)
    assert len(batches) == 2
    names = [name for name, _ in batches[0]]
    assert names == ["content_block_start", "content_block_delta"]
    assert batches[0][1][1]["delta"] == {"type": "text_delta", "text": "Hell"}
    assert len(batches[1]) > 5


def test_a_read_with_no_content_yet_gives_nothing() -> None:
    assert decoder().feed_first(b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n') == []


@settings(max_examples=80, deadline=None)
@given(cut=st.integers(min_value=0, max_value=2000))
def test_feed_first_then_feed_is_feed(cut: int) -> None:
    """Whatever the first read holds, the events are those of plain `feed`, in order."""
    data = stream_bytes(
        Turn(text="Say it twice. Say it twice.", tool_calls=[("Bash", {"command": "ls"})])
    )
    options = StreamOptions(model="claude-x", tool_schemas=TOOLS, message_id="msg_1")
    split = OpenAIStreamDecoder(StreamTranslator(options), "fake")
    events: list[Event] = []
    for batch in split.feed_first(data[:cut]):
        events += batch
    events += split.feed(data[cut:]) + split.end()
    plain = run(data)[1:]  # run() starts with message_start
    assert [without_ids(e) for e in events] == [without_ids(e) for e in plain]
    assert any(name == "content_block_start" for name, _ in events)


def without_ids(event: Event) -> Event:
    """Tool-use ids are fresh on every run."""
    name, data = event
    block = data.get("content_block")
    if isinstance(block, dict) and "id" in block:
        data = {**data, "content_block": {k: v for k, v in block.items() if k != "id"}}
    return name, data
