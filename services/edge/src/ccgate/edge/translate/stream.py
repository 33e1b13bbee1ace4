"""OpenAI chat-completion chunks → Anthropic stream events: one state machine, fed chunk by chunk.

Events are `(name, data)` pairs of plain data. Blocks open and close in order with contiguous
indices; reasoning and `<think>` text become thinking blocks (closed with a signature), tool
calls become tool_use blocks. Tool-call arguments are gathered until the call is complete and
then sent as one validated `input_json_delta`: the client runs a tool only after its block
stops, and this way a truncated or broken argument string is repaired or reported instead of
reaching the client half-parsed. Parallel calls interleaved by the backend stay separate.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from ccgate.edge.translate.errors import ApiError, from_stream_error
from ccgate.edge.translate.jsonfix import parse_arguments
from ccgate.edge.translate.sse_decode import SSEDecoder
from ccgate.edge.translate.text_tools import TextToolParser, ToolPiece
from ccgate.edge.translate.thinking import ThinkSplitter

Event = tuple[str, dict[str, Any]]

PING: Event = ("ping", {"type": "ping"})

_STOP_REASONS = {
    "stop": "end_turn",
    "eos": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


@dataclass
class StreamOptions:
    model: str
    message_id: str = field(default_factory=new_message_id)
    input_tokens: int = 0
    think_tags: bool = True
    tool_schemas: dict[str, dict[str, Any]] | None = None  # None: no tools were offered
    stop_sequences: tuple[str, ...] = ()


@dataclass
class _PendingTool:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)
    parsed: dict[str, Any] | None = None


class StreamTranslator:
    def __init__(self, options: StreamOptions) -> None:
        self.options = options
        self._index = -1
        self._open: str | None = None  # kind of the open block: text / thinking
        self._thinking_text: list[str] = []
        self._tools: dict[Any, _PendingTool] = {}
        self._splitter = ThinkSplitter() if options.think_tags else None
        self._text_tools = TextToolParser(options.tool_schemas) if options.tool_schemas else None
        self._emitted_tool = False
        self._chars_out = 0
        self.finish_reason: str | None = None
        self.matched_stop: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.response_model: str | None = None
        self.tool_calls: list[tuple[str, str]] = []  # (id, name), for traces
        self.finished = False

    # -- public -------------------------------------------------------------------------
    def start(self) -> list[Event]:
        message: dict[str, Any] = {
            "id": self.options.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.options.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.options.input_tokens,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._take_usage(usage)
        if self.response_model is None and isinstance(chunk.get("model"), str):
            self.response_model = chunk["model"]
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return out
        choice = choices[0]
        delta = choice.get("delta") or choice.get("message") or {}
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self._thinking(reasoning, out)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._content(content, out)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                self._gather_tools(calls)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
            matched = choice.get("stop_reason")
            if isinstance(matched, str) and matched in self.options.stop_sequences:
                self.matched_stop = matched
        return out

    def finish(self, fallback_input_tokens: int | None = None) -> list[Event]:
        out: list[Event] = []
        if self._splitter is not None:
            for kind, text in self._splitter.flush():
                self._routed(kind, text, out)
        if self._text_tools is not None:
            for piece in self._text_tools.flush():
                self._text_piece(piece, out)
        self._flush_tools(out)
        self._close(out)
        if self._emitted_tool:
            stop_reason = "tool_use"
        elif self.matched_stop is not None:
            stop_reason = "stop_sequence"
        else:
            stop_reason = _STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
            if stop_reason == "tool_use":  # the backend said tool_calls but sent none
                stop_reason = "end_turn"
        input_tokens = self.prompt_tokens
        if input_tokens is None:
            input_tokens = fallback_input_tokens or self.options.input_tokens
        output_tokens = self.completion_tokens
        if output_tokens is None:
            output_tokens = max(1, self._chars_out // 4) if self._chars_out else 0
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": self.matched_stop},
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        self.finished = True
        return out

    # -- content ------------------------------------------------------------------------
    def _content(self, text: str, out: list[Event]) -> None:
        if self._splitter is None:
            self._routed("text", text, out)
            return
        for kind, piece in self._splitter.feed(text):
            self._routed(kind, piece, out)

    def _routed(self, kind: str, text: str, out: list[Event]) -> None:
        if kind == "thinking":
            self._thinking(text, out)
        elif self._text_tools is None:
            self._text(text, out)
        else:
            for piece in self._text_tools.feed(text):
                self._text_piece(piece, out)

    def _text_piece(self, piece: Any, out: list[Event]) -> None:
        if isinstance(piece, ToolPiece):
            tool = _PendingTool(new_tool_id(), piece.name, parsed=piece.arguments)
            self._tools[("text", len(self._tools))] = tool
        else:
            self._text(piece.text, out)

    def _text(self, text: str, out: list[Event]) -> None:
        if not text:
            return
        if self._tools:
            self._flush_tools(out)
        if self._open != "text":
            # Whitespace that opens a text block (the "\n\n" after </think>) is noise; dropping
            # all of it, whatever the chunking, keeps the result independent of chunk bounds.
            text = text.lstrip()
            if not text:
                return
            self._begin("text", {"type": "text", "text": ""}, out)
        self._chars_out += len(text)
        out.append(self._delta({"type": "text_delta", "text": text}))

    def _thinking(self, text: str, out: list[Event]) -> None:
        if self._tools:
            self._flush_tools(out)
        if self._open != "thinking":
            self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
        self._chars_out += len(text)
        self._thinking_text.append(text)
        out.append(self._delta({"type": "thinking_delta", "thinking": text}))

    # -- tools --------------------------------------------------------------------------
    def _gather_tools(self, calls: list[Any]) -> None:
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            key = _tool_key(call, position)
            fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
            tool = self._tools.get(key)
            if tool is None:
                # Fresh ids, never the backend's: local servers reuse `call_0` every turn, and
                # Claude Code silently drops a tool_use whose id it has already seen.
                tool = _PendingTool(new_tool_id(), "")
                self._tools[key] = tool
            name = fn.get("name")
            if isinstance(name, str) and name and not tool.name:
                tool.name = name
            args = fn.get("arguments")
            if isinstance(args, str):
                tool.arguments.append(args)
            elif isinstance(args, dict):  # some servers send an object, not a string
                tool.parsed = args

    def _flush_tools(self, out: list[Event]) -> None:
        tools, self._tools = self._tools, {}
        for tool in tools.values():
            if not tool.name:
                continue
            self._close(out)
            if tool.parsed is not None:
                arguments = tool.parsed
            else:
                arguments, _repaired = parse_arguments("".join(tool.arguments))
            self._index += 1
            block = {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
            out.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": self._index, "content_block": block},
                )
            )
            partial = orjson.dumps(arguments).decode()
            self._chars_out += len(partial)
            out.append(self._delta({"type": "input_json_delta", "partial_json": partial}))
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
            self._emitted_tool = True
            self.tool_calls.append((tool.id, tool.name))

    # -- blocks -------------------------------------------------------------------------
    def _begin(self, kind: str, block: dict[str, Any], out: list[Event]) -> None:
        self._close(out)
        self._index += 1
        self._open = kind
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )

    def _close(self, out: list[Event]) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            digest = hashlib.sha256("".join(self._thinking_text).encode()).hexdigest()
            self._thinking_text = []
            out.append(self._delta({"type": "signature_delta", "signature": "ccgate-" + digest}))
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = None

    def _delta(self, delta: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def _take_usage(self, usage: dict[str, Any]) -> None:
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        if isinstance(prompt, int):
            self.prompt_tokens = prompt
        if isinstance(completion, int):
            self.completion_tokens = completion


class OpenAIStreamDecoder:
    """Upstream bytes → Anthropic events, through the SSE decoder and the translator."""

    def __init__(self, translator: StreamTranslator, provider: str) -> None:
        self.translator = translator
        self._provider = provider
        self._sse = SSEDecoder()
        self.done = False  # [DONE] or a finish_reason was seen

    def feed(self, data: bytes) -> list[Event]:
        return self._events(self._sse.feed(data))

    def end(self, fallback_input_tokens: int | None = None) -> list[Event]:
        """The upstream body ended. Raises ApiError when it ended before the model finished."""
        out = self._events(self._sse.flush())
        if not self.done and self.translator.finish_reason is None:
            raise ApiError(
                500,
                "api_error",
                f"upstream {self._provider} ended the stream before the model finished",
            )
        return out + self.translator.finish(fallback_input_tokens)

    def _events(self, items: list[tuple[str, str]]) -> list[Event]:
        out: list[Event] = []
        for event, data in items:
            if data == "[DONE]":
                self.done = True
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue  # keep-alive comments and junk lines are not content
            if not isinstance(chunk, dict):
                continue
            if event == "error" or ("error" in chunk and "choices" not in chunk):
                raise from_stream_error(chunk, self._provider)
            out.extend(self.translator.feed(chunk))
        return out


def _tool_key(call: dict[str, Any], position: int) -> int | str:
    """Which streamed tool call a fragment belongs to: its index, else its id, else its place
    (a backend may send anything there, and the key must be hashable)."""
    for candidate in (call.get("index"), call.get("id")):
        if isinstance(candidate, int | str) and candidate != "":
            return candidate
    return position
