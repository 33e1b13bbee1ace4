"""hypothesis over the translation layer: arbitrary (also malformed) requests and arbitrary
upstream streams give a valid Anthropic result or a clean ApiError — never another exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccgate.edge import savers
from ccgate.edge.auth import caller_identity, session_id
from ccgate.edge.tracing import failed_tool_calls
from ccgate.edge.translate.assemble import MessageAssembler
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.openai_stream import OpenAIStreamDecoder
from ccgate.edge.translate.request import to_openai
from ccgate.edge.translate.stream import StreamOptions, StreamTranslator
from ccgate.edge.translate.target import Quirks, Target
from ccgate.edge.translate.tokens import count_tokens
from ccgate.edge.translate.tools import tool_schemas
from ccgate.edge.translate.validate import check_messages_request
from ccgate.shared.settings import Settings
from tests.sse_grammar import check_grammar

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
block_types = st.sampled_from(
    [
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "whatever",
    ]
)
inner_blocks = st.fixed_dictionaries(
    {"type": block_types},
    optional={"text": json_values, "source": json_values, "data": json_values},
)
blocks = st.fixed_dictionaries(
    {"type": block_types},
    optional={
        "text": json_values,
        "source": json_values,
        "id": json_values,
        "name": json_values,
        "input": json_values,
        "tool_use_id": json_values,
        "content": st.one_of(json_values, st.lists(inner_blocks, max_size=3)),
        "is_error": json_values,
        "thinking": json_values,
        "signature": json_values,
    },
)
messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "bot"]),
        "content": st.one_of(st.text(max_size=30), st.lists(blocks, max_size=4), json_values),
    },
)
requests = st.fixed_dictionaries(
    {
        "model": st.one_of(st.just("claude-sonnet-4-8"), json_values),
        "messages": st.one_of(st.lists(messages, min_size=1, max_size=5), json_values),
    },
    optional={
        "max_tokens": st.one_of(st.integers(-1, 10**6), json_values),
        "system": st.one_of(st.text(max_size=20), st.lists(blocks, max_size=3), json_values),
        "tools": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": json_values},
                    optional={
                        "input_schema": json_values,
                        "type": json_values,
                        "description": json_values,
                        "defer_loading": json_values,
                    },
                ),
                max_size=3,
            ),
            json_values,
        ),
        "tool_choice": json_values,
        "thinking": json_values,
        "output_config": json_values,
        "metadata": json_values,
        "temperature": json_values,
        "top_p": json_values,
        "top_k": json_values,
        "stop_sequences": json_values,
        "stream": json_values,
    },
)
TARGETS = [
    Target("p", "m", Quirks()),
    Target(
        "p",
        "m",
        Quirks(
            reasoning_control="openrouter",
            reasoning_history="reasoning_content",
            supports_images=False,
        ),
    ),
    Target(
        "p",
        "m",
        Quirks(reasoning_control="chat_template_kwargs", max_tokens_cap=100),
        thinking_allowed=False,
    ),
]
SETTINGS = Settings.from_env(None)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(req=requests)
def test_any_request_translates_or_fails_cleanly(req: dict[str, Any]) -> None:
    try:
        checked = check_messages_request(req)
    except ApiError as error:
        assert error.status == 400
        return
    savers.local_answer(checked, SETTINGS)
    caller_identity(checked, None, "127.0.0.1")
    session_id(checked, {})
    failed_tool_calls(checked)
    count_tokens(checked)
    tool_schemas(checked)
    for target in TARGETS:
        try:
            body, _ = to_openai(checked, target)
        except ApiError as error:
            assert error.status == 400
            continue
        json.dumps(body)  # plain data, serialisable


chunk_dicts = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "delta": st.one_of(
                            json_values,
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "content": st.one_of(
                                        st.text(max_size=30),
                                        st.sampled_from(
                                            [
                                                "<think>",
                                                "</think>",
                                                "<tool_call>",
                                                '{"name": "Bash", "arguments": {}}',
                                                "</tool_call>",
                                                "[TOOL_CALLS]",
                                            ]
                                        ),
                                        json_values,
                                    ),
                                    "reasoning_content": json_values,
                                    "tool_calls": st.one_of(
                                        json_values,
                                        st.lists(
                                            st.fixed_dictionaries(
                                                {},
                                                optional={
                                                    "index": json_values,
                                                    "id": json_values,
                                                    "function": st.one_of(
                                                        json_values,
                                                        st.fixed_dictionaries(
                                                            {},
                                                            optional={
                                                                "name": json_values,
                                                                "arguments": st.one_of(
                                                                    st.text(max_size=20),
                                                                    json_values,
                                                                ),
                                                            },
                                                        ),
                                                    ),
                                                },
                                            ),
                                            max_size=3,
                                        ),
                                    ),
                                },
                            ),
                        ),
                        "finish_reason": st.one_of(
                            st.none(),
                            st.sampled_from(
                                ["stop", "length", "tool_calls", "content_filter", "x"]
                            ),
                            json_values,
                        ),
                    },
                ),
                max_size=2,
            ),
            json_values,
        ),
        "usage": json_values,
        "model": json_values,
        "error": json_values,
    },
)
frames = st.lists(
    st.one_of(
        chunk_dicts.map(lambda c: f"data: {json.dumps(c)}\n\n".encode()),
        st.binary(max_size=30),
        st.just(b"data: [DONE]\n\n"),
        st.just(b": keep-alive\n\n"),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames=frames, cuts=st.lists(st.integers(0, 400), max_size=8), tools=st.booleans())
def test_any_upstream_stream_gives_a_valid_message_or_a_clean_error(
    frames: list[bytes], cuts: list[int], tools: bool
) -> None:
    raw = b"".join(frames)
    translator = StreamTranslator(
        StreamOptions(model="m", tool_schemas={"Bash": {}} if tools else None)
    )
    decoder = OpenAIStreamDecoder(translator, "p")
    events = translator.start()
    last = 0
    try:
        for cut in sorted({c for c in cuts if c < len(raw)}):
            events += decoder.feed(raw[last:cut])
            last = cut
        events += decoder.feed(raw[last:])
        events += decoder.end(fallback_input_tokens=10)
    except ApiError as error:
        assert error.status in (400, 429, 500, 529)
        check_grammar([*events, ("error", error.body())], allow_error=True)
        return
    check_grammar(events)
    assembler = MessageAssembler()
    assembler.add(events)
    assert assembler.message["stop_reason"] in (
        "end_turn",
        "max_tokens",
        "tool_use",
        "refusal",
        "stop_sequence",
    )
