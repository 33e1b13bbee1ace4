"""A backend's "context exceeded" error, in each backend's own words, becomes Anthropic's
`prompt is too long`: what Claude Code compacts on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccgate.edge.translate.errors import ApiError, from_upstream
from tests.unit.streams import run

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
