"""The Messages requests the edge tests send: a model name, two tools, a simple body, a POST."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Edge

MODEL = "claude-sonnet-4-8"
TOOLS: list[Any] = [
    {
        "name": "Bash",
        "description": "run",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
    {
        "name": "Read",
        "description": "read",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
    },
]


def post(edge: Edge, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(edge.url + "/v1/messages?beta=true", json=body, headers=headers, timeout=30)


def simple(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
