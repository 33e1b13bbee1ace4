"""What the stream tests share: a turn as the backend's SSE bytes, those bytes through the
decoder and translator (cut where a test says), and the message a client assembles."""

from __future__ import annotations

import json
from typing import Any

from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.openai_stream import OpenAIStreamDecoder
from ccgate.edge.translate.stream import Event, StreamOptions, StreamTranslator
from tests.fakes.backend import Turn, openai_chunks

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
