"""What the translation needs to know about the backend: plain data, filled from the provider table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ReasoningControl = Literal["none", "reasoning_effort", "openrouter", "chat_template_kwargs"]


@dataclass(frozen=True)
class Quirks:
    # How to switch thinking on/off: a `reasoning_effort` field, OpenRouter's `reasoning`
    # object, `chat_template_kwargs` (vLLM, NIM, llama.cpp, LM Studio), or not at all.
    reasoning_control: ReasoningControl = "none"
    # Earlier thinking in the history: DeepSeek wants it back as `reasoning_content`;
    # most others reject or ignore it, so it is dropped.
    reasoning_history: Literal["drop", "reasoning_content"] = "drop"
    supports_top_k: bool = True
    supports_stream_options: bool = True
    supports_images: bool = True
    think_tags: bool = True
    max_tokens_cap: int | None = None
    # OpenAI `response_format: {"type": "json_schema"}` (for Anthropic `output_config.format`).
    supports_json_schema: bool = True
    # llama.cpp reads `tool_choice` as a string only (auto/none/required); an object naming a
    # function is silently taken as "auto". Such a backend gets "required" and only that tool.
    named_tool_choice: bool = True
    schema_drop_keys: frozenset[str] = field(default_factory=lambda: frozenset({"$schema"}))


@dataclass(frozen=True)
class Target:
    provider: str
    model: str
    quirks: Quirks = field(default_factory=Quirks)
    thinking_allowed: bool = True  # the tier's ENABLE_*_THINKING
