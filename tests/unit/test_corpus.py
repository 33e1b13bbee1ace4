"""Every recorded stream of the corpus, replayed whole, one byte at a time and in random
chunkings: exact event grammar, blocks, tool inputs, stop_reason, usage; errors stay errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.openai_stream import OpenAIStreamDecoder
from ccgate.edge.translate.stream import Event, StreamOptions, StreamTranslator
from ccgate.edge.translate.thinking import starts_in_reasoning
from tests.corpus_cases import TOOLS, Case, check_error, check_message, load_cases
from tests.sse_grammar import check_grammar, sdk_accumulate

ALL_CASES = load_cases()
FAMILIES = {case.family for case in ALL_CASES}
# Native Anthropic streams are passed through, not translated: they are replayed through the
# edge only (tests/integration/test_edge_corpus.py).
CASES = [case for case in ALL_CASES if case.format == "openai"]


def replay(case: Case, pieces: list[bytes]) -> tuple[list[Event], ApiError | None]:
    options = StreamOptions(
        model="claude-sonnet-4-8",
        tool_schemas=TOOLS if case.tools else None,
        thinking_open=starts_in_reasoning(case.model, case.thinking),
        provider=case.family,
    )
    translator = StreamTranslator(options)
    decoder = OpenAIStreamDecoder(translator, case.family)
    events = translator.start()
    try:
        for piece in pieces:
            events += decoder.feed(piece)
        events += decoder.end()
    except ApiError as error:
        return events, error
    return events, None


def verify(case: Case, pieces: list[bytes]) -> dict[str, Any] | None:
    events, error = replay(case, pieces)
    if error is not None:
        check_grammar([*events, ("error", error.body())], allow_error=True)
        check_error(case, error.type, error.status, error.message)
        return None
    check_grammar(events)
    assembler = MessageAssembler()
    assembler.add(events)
    check_message(case, assembler.message)
    sdk = sdk_accumulate(events)  # the official SDK's accumulator agrees
    assert [b.type for b in sdk.content] == [b["type"] for b in assembler.message["content"]]
    return assembler.message


def test_the_corpus_is_big_enough_and_names_its_sources() -> None:
    assert len(ALL_CASES) >= 60
    assert {"openrouter", "vllm", "deepseek", "nim", "llamacpp", "ollama", "lmstudio"} <= FAMILIES
    assert "litellm" in FAMILIES
    assert len({case.id for case in ALL_CASES}) == len(ALL_CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_whole_and_byte_by_byte(case: Case) -> None:
    verify(case, [case.raw])
    verify(case, [case.raw[i : i + 1] for i in range(len(case.raw))])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(index=st.integers(0, len(CASES) - 1), data=st.data())
def test_any_chunking(index: int, data: st.DataObject) -> None:
    case = CASES[index]
    raw = case.raw
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=30))))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    verify(case, pieces)
