"""A strict checker of the Anthropic streaming grammar, written from the public API reference
(Messages → Streaming): run over every stream the tests produce."""

from __future__ import annotations

import json
from typing import Any

STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
DELTA_FOR_BLOCK = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "redacted_thinking": set(),
    "tool_use": {"input_json_delta"},
}


class GrammarError(AssertionError):
    pass


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Independent of the gateway's own decoder: frames split on blank lines."""
    events = []
    for frame in raw.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
        if not frame.strip():
            continue
        name, data = "message", []
        for line in frame.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        events.append((name, json.loads("\n".join(data))))
    return events


def check_grammar(events: list[tuple[str, dict[str, Any]]], allow_error: bool = False) -> None:
    def fail(i: int, why: str) -> None:
        raise GrammarError(f"event {i} ({events[i][0] if i < len(events) else 'end'}): {why}")

    real = [(i, n, d) for i, (n, d) in enumerate(events) if n != "ping"]
    if not real or real[0][1] != "message_start":
        fail(0, "stream must begin with message_start")
    start = real[0][2]["message"]
    for key in ("id", "type", "role", "model", "content", "usage"):
        if key not in start:
            fail(real[0][0], f"message_start.message lacks {key}")
    if start["content"] != [] or start["role"] != "assistant":
        fail(real[0][0], "message_start must carry an empty assistant message")
    expected_index, open_block, json_buf = 0, None, ""
    saw_delta = saw_stop = False
    for i, name, data in real[1:]:
        if data.get("type") != name:
            fail(i, f"data.type {data.get('type')!r} differs from the event name")
        if saw_stop:
            fail(i, "nothing may follow message_stop")
        if name == "error":
            if not allow_error:
                fail(i, f"unexpected error event: {data}")
            return
        if name == "content_block_start":
            if saw_delta:
                fail(i, "content block after message_delta")
            if open_block is not None:
                fail(i, "a block started while another is open")
            if data["index"] != expected_index:
                fail(i, f"index {data['index']} where {expected_index} was next")
            open_block = data["content_block"]["type"]
            json_buf = ""
        elif name == "content_block_delta":
            if open_block is None or data["index"] != expected_index:
                fail(i, "delta for a block that is not open")
            kind = data["delta"]["type"]
            if kind not in DELTA_FOR_BLOCK.get(str(open_block), {kind}):
                fail(i, f"{kind} inside a {open_block} block")
            if kind == "input_json_delta":
                json_buf += data["delta"]["partial_json"]
        elif name == "content_block_stop":
            if open_block is None or data["index"] != expected_index:
                fail(i, "stop for a block that is not open")
            if open_block == "tool_use" and not isinstance(json.loads(json_buf or "{}"), dict):
                fail(i, "tool input is not a JSON object")
            open_block = None
            expected_index += 1
        elif name == "message_delta":
            if open_block is not None:
                fail(i, "message_delta while a block is open")
            if saw_delta:
                fail(i, "second message_delta")
            if data["delta"].get("stop_reason") not in STOP_REASONS:
                fail(i, f"bad stop_reason {data['delta'].get('stop_reason')!r}")
            if not isinstance(data.get("usage", {}).get("output_tokens"), int):
                fail(i, "message_delta.usage.output_tokens missing")
            saw_delta = True
        elif name == "message_stop":
            if not saw_delta:
                fail(i, "message_stop before message_delta")
            saw_stop = True
        else:
            fail(i, f"unknown event {name}")
    if not saw_stop:
        fail(len(events), "stream ended without message_stop")


def sdk_accumulate(events: list[tuple[str, dict[str, Any]]]) -> Any:
    """The official anthropic SDK's own stream accumulator over the events: it must build a
    message from them (what `messages.stream(...).get_final_message()` would return)."""
    from anthropic.lib.streaming._messages import accumulate_event

    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for name, data in events:
        if name in ("ping", "error"):
            continue
        snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    return snapshot
