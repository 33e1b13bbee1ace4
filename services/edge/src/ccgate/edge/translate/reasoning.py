"""Where a chunk carries the model's reasoning, and what an upstream finish_reason means.

Reasoning arrives as `reasoning_content` (DeepSeek, vLLM, llama.cpp, LM Studio), `reasoning`
(OpenRouter, Ollama, vLLM ≥0.10) or only as OpenRouter's `reasoning_details` list: items of
type `reasoning.text` / `reasoning.summary` are shown as thinking, `reasoning.encrypted` is kept
opaque (an Anthropic `redacted_thinking` block) for the round trip. OpenRouter often sends the
same text both as `reasoning` and in `reasoning_details`; it is taken once.
"""

from __future__ import annotations

from typing import Any

import orjson

ENCRYPTED = "reasoning.encrypted"
# The prefix of a redacted_thinking block's data that holds an OpenRouter reasoning_details
# item (so a later request can hand it back unchanged).
DETAIL_PREFIX = "openrouter:"

# finish_reason → Anthropic stop_reason. Anything else ("error", vLLM's "abort", a value we
# have never seen) is not a finished answer and must not pass for one.
STOP_REASONS = {
    "stop": "end_turn",
    "eos": "end_turn",
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "model_length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "tool_use": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
    "safety": "refusal",
    "recitation": "refusal",
}


def reasoning_of(delta: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(reasoning text to show, encrypted reasoning items to keep) of one delta or message."""
    text = delta.get("reasoning_content") or delta.get("reasoning")
    details = delta.get("reasoning_details")
    if not isinstance(details, list):
        return (text if isinstance(text, str) else ""), []
    shown: list[str] = []
    kept: list[dict[str, Any]] = []
    for item in details:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == ENCRYPTED and isinstance(item.get("data"), str) and item["data"]:
            kept.append(item)
        elif kind == "reasoning.text" and isinstance(item.get("text"), str):
            shown.append(item["text"])
        elif kind == "reasoning.summary" and isinstance(item.get("summary"), str):
            shown.append(item["summary"])
    if not (isinstance(text, str) and text):
        text = "".join(shown)
    return text, kept


def redacted_data(item: dict[str, Any]) -> str:
    return DETAIL_PREFIX + orjson.dumps(item).decode()


def detail_from_redacted(data: Any) -> dict[str, Any] | None:
    """The reasoning_details item a redacted_thinking block came from, if it came from one."""
    if not isinstance(data, str) or not data.startswith(DETAIL_PREFIX):
        return None
    try:
        item = orjson.loads(data[len(DETAIL_PREFIX) :])
    except orjson.JSONDecodeError:
        return None
    return item if isinstance(item, dict) else None
