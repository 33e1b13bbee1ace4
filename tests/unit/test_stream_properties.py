"""hypothesis over the stream translation's promises (issue 14): a tool call comes only from
content outside reasoning, a cut-off output never yields tool_use, and every distinct tool call
id gets its own block — whatever the chunking, the call format and the way reasoning arrives."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.stream import StreamOptions, StreamTranslator
from ccgate.edge.translate.tool_calls import TRUNCATED_KEY
from tests.sse_grammar import check_grammar

filler = st.text(alphabet="abc xyz ü✓\n.", max_size=12)


def hermes(name: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {{"command": "x"}}}}</tool_call>'


def qwen_xml(name: str) -> str:
    return f"<tool_call>\n<function={name}>\n<parameter=command>\nx\n</parameter>\n</function>\n</tool_call>"


def translate_chunks(
    chunks: list[dict[str, Any]], thinking_open: bool = False, tools: bool = True
) -> dict[str, Any]:
    translator = StreamTranslator(
        StreamOptions(
            model="m",
            tool_schemas={"Inside": {}, "Outside": {}, "Bash": {}} if tools else None,
            thinking_open=thinking_open,
        )
    )
    events = translator.start()
    for chunk in chunks:
        events += translator.feed(chunk)
    events += translator.finish()
    check_grammar(events)
    assembler = MessageAssembler()
    assembler.add(events)
    return assembler.message


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    segments=st.lists(
        st.tuples(st.sampled_from(["think", "text"]), st.booleans(), filler, filler), max_size=6
    ),
    form=st.sampled_from([hermes, qwen_xml]),
    mode=st.sampled_from(["tags", "forced_open", "reasoning_field"]),
    cuts=st.lists(st.integers(0, 400), max_size=25),
)
def test_a_tool_call_comes_only_from_content_outside_reasoning(
    segments: list[tuple[str, bool, str, str]], form: Any, mode: str, cuts: list[int]
) -> None:
    if mode == "forced_open":
        segments = [("think", True, "a", "b"), *segments]
    chunks: list[dict[str, Any]] = []
    content = ""
    outside = 0
    for position, (kind, with_call, before, after) in enumerate(segments):
        call = form("Inside" if kind == "think" else "Outside") if with_call else ""
        body = before + call + after
        if kind == "text":
            outside += with_call
            content += body
        elif mode == "reasoning_field":
            chunks += [{"choices": [{"delta": {"content": content}}]}] if content else []
            content = ""
            chunks.append({"choices": [{"delta": {"reasoning_content": body}}]})
        elif mode == "forced_open" and position == 0:
            content += body + "</think>"
        else:
            content += "<think>" + body + "</think>"
    chunks += [{"choices": [{"delta": {"content": piece}}]} for piece in split(content, cuts)]
    chunks.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    message = translate_chunks(chunks, thinking_open=mode == "forced_open")
    names = [b["name"] for b in message["content"] if b["type"] == "tool_use"]
    assert "Inside" not in names
    assert names.count("Outside") == outside
    assert (message["stop_reason"] == "tool_use") == (outside > 0)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    args=st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "path"]), st.text(max_size=8), max_size=3),
        min_size=1,
        max_size=3,
    ),
    cut=st.integers(0, 60),
    written=st.booleans(),
)
def test_finish_reason_length_never_yields_tool_use(
    args: list[dict[str, str]], cut: int, written: bool
) -> None:
    chunks: list[dict[str, Any]] = []
    for i, arguments in enumerate(args):
        raw = json.dumps(arguments)
        if i == len(args) - 1:
            raw = raw[:cut]  # the output hit max_tokens while this call was written
        if written:
            text = (
                f'<tool_call>{{"name": "Bash", "arguments": {raw}'
                if i == len(args) - 1
                else (f'<tool_call>{{"name": "Bash", "arguments": {raw}}}</tool_call>')
            )
            chunks.append({"choices": [{"delta": {"content": text}}]})
        else:
            call = {"index": i, "id": f"c{i}", "function": {"name": "Bash", "arguments": raw}}
            chunks.append({"choices": [{"delta": {"tool_calls": [call]}}]})
    chunks.append({"choices": [{"delta": {}, "finish_reason": "length"}]})
    message = translate_chunks(chunks)
    assert message["stop_reason"] == "max_tokens"
    for block in message["content"]:
        if block["type"] == "tool_use":
            # Whole calls keep their input; a cut one is marked, never passed off as complete.
            assert block["input"] in args or TRUNCATED_KEY in block["input"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["Bash", "Read", "Write"]),
            st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9), max_size=2),
        ),
        min_size=1,
        max_size=4,
    ),
    indices=st.sampled_from(["sequential", "all_zero", "missing"]),
    repeat_id=st.booleans(),
    pieces=st.integers(1, 4),
    together=st.booleans(),
)
def test_every_distinct_tool_call_id_gets_its_own_block(
    calls: list[tuple[str, dict[str, int]]],
    indices: str,
    repeat_id: bool,
    pieces: int,
    together: bool,
) -> None:
    fragments: list[dict[str, Any]] = []
    for n, (name, arguments) in enumerate(calls):
        raw = json.dumps(arguments)
        size = max(1, len(raw) // pieces)
        for k, start in enumerate(range(0, len(raw), size)):
            fragment: dict[str, Any] = {"function": {"arguments": raw[start : start + size]}}
            if k == 0:
                fragment["function"]["name"] = name
            if k == 0 or repeat_id:
                fragment["id"] = f"call_{n}"
            if indices != "missing":
                fragment["index"] = n if indices == "sequential" else 0
            fragments.append(fragment)
    if together:
        chunks = [{"choices": [{"delta": {"tool_calls": fragments}}]}]
    else:
        chunks = [{"choices": [{"delta": {"tool_calls": [f]}}]} for f in fragments]
    chunks.append({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]})
    message = translate_chunks(chunks)
    uses = [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]
    assert uses == calls
    assert len({b["id"] for b in message["content"]}) == len(calls)
