"""A whole (non-streamed) OpenAI chat completion → the one chunk the stream state machine takes.

A non-streaming client request is answered from a non-streaming upstream call, but through the
very `StreamTranslator` a stream goes through — fed this one synthetic chunk — so the two
paths cannot disagree on blocks, tool calls, thinking, stop reasons or usage.
"""

from __future__ import annotations

from typing import Any

import orjson

from ccgate.edge.translate.errors import ApiError, from_stream_error

_MESSAGE_FIELDS = ("role", "content", "reasoning_content", "reasoning")


def completion_chunk(raw: bytes, provider: str) -> dict[str, Any]:
    """The chunk for a `chat.completion` body; an error body or a shapeless answer raises."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _broken(provider, "is not JSON") from None
    if not isinstance(body, dict):
        raise _broken(provider, "is not a JSON object")
    if "error" in body and "choices" not in body:
        raise from_stream_error(body, provider)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _broken(provider, "has no choices")
    choice = choices[0]
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    delta: dict[str, Any] = {k: message[k] for k in _MESSAGE_FIELDS if k in message}
    calls = message.get("tool_calls")
    if not isinstance(calls, list) and isinstance(message.get("function_call"), dict):
        calls = [{"type": "function", "function": message["function_call"]}]  # legacy shape
    if isinstance(calls, list):
        # A streamed call is keyed by its index; a whole answer's calls are keyed by place.
        delta["tool_calls"] = [
            {**call, "index": position}
            for position, call in enumerate(calls)
            if isinstance(call, dict)
        ]
    reason = choice.get("finish_reason")
    out_choice: dict[str, Any] = {
        "index": 0,
        "delta": delta,
        # A whole answer is finished by definition, even when a server omits the reason.
        "finish_reason": reason if isinstance(reason, str) and reason else "stop",
    }
    if "stop_reason" in choice:
        out_choice["stop_reason"] = choice["stop_reason"]
    chunk: dict[str, Any] = {"choices": [out_choice]}
    for key in ("model", "usage"):
        if key in body:
            chunk[key] = body[key]
    return chunk


def _broken(provider: str, what: str) -> ApiError:
    return ApiError(500, "api_error", f"upstream {provider}'s answer {what}")
