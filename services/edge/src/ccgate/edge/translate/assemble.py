"""Anthropic stream events → one Messages response: the non-streaming answer is built from the
very events the streaming answer sends, so the two never disagree."""

from __future__ import annotations

from typing import Any

import orjson

from ccgate.edge.translate.stream import Event


def json_copy(data: Any) -> Any:
    """A deep copy of JSON data (~10x faster than copy.deepcopy on an event's dicts)."""
    return orjson.loads(orjson.dumps(data))


class MessageAssembler:
    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self._json: dict[int, list[str]] = {}

    def add(self, events: list[Event]) -> None:
        for name, data in events:
            if name == "message_start":
                self.message = json_copy(data["message"])
            elif name == "content_block_start":
                self.message["content"].append(json_copy(data["content_block"]))
            elif name == "content_block_delta":
                self._delta(data["index"], data["delta"])
            elif name == "content_block_stop":
                self._stop(data["index"])
            elif name == "message_delta":
                self.message.update(data["delta"])
                usage = self.message.setdefault("usage", {})
                usage.update({k: v for k, v in data.get("usage", {}).items() if v is not None})

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self.message["content"][index]
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] += delta["text"]
        elif kind == "thinking_delta":
            block["thinking"] += delta["thinking"]
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "input_json_delta":
            self._json.setdefault(index, []).append(delta["partial_json"])

    def _stop(self, index: int) -> None:
        parts = self._json.pop(index, None)
        if parts is not None:
            text = "".join(parts)
            self.message["content"][index]["input"] = orjson.loads(text) if text else {}
