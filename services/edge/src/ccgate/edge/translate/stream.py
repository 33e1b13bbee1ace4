"""OpenAI chat-completion chunks → Anthropic stream events: one state machine, fed chunk by chunk.

Events are `(name, data)` pairs of plain data. Blocks open and close in order with contiguous
indices; reasoning (`reasoning_content`, `reasoning`, `reasoning_details`, `<think>` text)
becomes thinking blocks (closed with a signature), tool calls become tool_use blocks. Tool-call
arguments are gathered until the call is complete and then sent as one validated
`input_json_delta`: the client runs a tool only after its block stops, and this way a truncated
or broken argument string is repaired or reported instead of reaching the client half-parsed.

A whole non-streaming completion (`choices[0].message`) can be fed as one chunk: both paths
share every rule here. What is not a finished answer — an error object in the stream, a
finish_reason of "error" or one never seen — raises ApiError, never passes for `end_turn`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from ccgate.edge.translate.errors import ApiError, from_stream_error, overloaded
from ccgate.edge.translate.reasoning import STOP_REASONS, reasoning_of, redacted_data
from ccgate.edge.translate.text_tools import TextToolParser, ToolPiece, only_control_tokens
from ccgate.edge.translate.thinking import Kind, ThinkSplitter
from ccgate.edge.translate.tool_calls import TRUNCATED_KEY, PendingTool, ToolCallGatherer

Event = tuple[str, dict[str, Any]]

PING: Event = ("ping", {"type": "ping"})


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


@dataclass
class StreamOptions:
    model: str
    message_id: str = ""
    input_tokens: int = 0
    think_tags: bool = True
    tool_schemas: dict[str, dict[str, Any]] | None = None  # None: no tools were offered
    stop_sequences: tuple[str, ...] = ()
    thinking_open: bool = False  # the chat template opened `<think>` in the prompt
    provider: str = "upstream"  # for error messages
    # tool_choice `any` or `tool`: Anthropic's answer then opens with the call, no text before
    # it; a backend whose grammar lets text come first (llama.cpp's "required") is held to that.
    tool_forced: bool = False

    def __post_init__(self) -> None:
        if not self.message_id:
            self.message_id = new_message_id()


class StreamTranslator:
    def __init__(self, options: StreamOptions) -> None:
        self.options = options
        self._index = -1
        self._open: str | None = None  # kind of the open block: text / thinking
        self._thinking_text: list[str] = []
        self._api_tools = ToolCallGatherer()
        # Calls written as text, and the text after them, held until the end: text that turns
        # out to be reasoning (a late `</think>`) must not have been run as a tool.
        self._written: list[PendingTool | str] = []
        self._splitter = ThinkSplitter(options.thinking_open) if options.think_tags else None
        self._text_tools = TextToolParser(options.tool_schemas) if options.tool_schemas else None
        self._emitted_tool = False
        self._held: list[str] = []  # text before the forced call: dropped once the call comes
        self._chars_out = 0
        self.finish_reason: str | None = None
        self.matched_stop: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.response_model: str | None = None
        self.tool_calls: list[tuple[str, str]] = []  # (id, name), for traces
        self.cut_tool_calls: list[str] = []  # names of calls cut off by max_tokens, for logs
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
        """One upstream chunk (or a whole completion). Raises ApiError for an upstream failure."""
        if chunk.get("error") or chunk.get("object") == "error":
            # OpenRouter: `error` next to `choices: [{finish_reason: "error"}]`; vLLM: a flat
            # `{"object": "error", "message": …}`; OpenAI: `{"error": {…}}`.
            raise from_stream_error(chunk, self.options.provider)
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
        if choice.get("error"):
            raise from_stream_error(choice, self.options.provider)
        delta = choice.get("delta") or choice.get("message") or {}
        if isinstance(delta, dict):
            self._delta(delta, out)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            if reason.lower() not in STOP_REASONS:
                raise self._unfinished(reason)
            self.finish_reason = reason.lower()
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
        mapped = STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
        cut = mapped == "max_tokens"
        self._flush_pending(out, cut)
        if self._held and not self._emitted_tool:
            # No call came after all: the text is the whole answer, so it is not lost.
            held, self._held = "".join(self._held), []
            self._text(held, out, hold=False)
        self._close(out)
        if cut:
            # What Anthropic says when output hits the limit — also mid-call: a half-written
            # Write or Edit must never look like a call to run.
            stop_reason = "max_tokens"
        elif self._emitted_tool:
            stop_reason = "tool_use"
        elif self.matched_stop is not None:
            stop_reason = "stop_sequence"
        else:
            stop_reason = "end_turn" if mapped == "tool_use" else mapped  # tool_calls, none sent
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
    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        reasoning: Any
        encrypted: list[dict[str, Any]] = []
        if "reasoning_details" in delta:
            reasoning, encrypted = reasoning_of(delta)
        else:  # the common chunk
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            if self._splitter is not None:
                self._splitter.separated_by_server()
            self._thinking(reasoning, out)
        for item in encrypted:
            self._redacted(item, out)
        content = delta.get("content")
        if isinstance(content, str) and content:
            if self._splitter is None:
                self._routed("text", content, out)
            else:
                for kind, piece in self._splitter.feed(content):
                    self._routed(kind, piece, out)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            self._api_tools.add(calls)

    def _routed(self, kind: Kind, text: str, out: list[Event]) -> None:
        if kind == "thinking":
            self._thinking(text, out)
        elif kind == "closed":
            self._reasoning_ended()
        elif self._text_tools is None:
            self._text(text, out)
        else:
            for piece in self._text_tools.feed(text):
                self._text_piece(piece, out)

    def _reasoning_ended(self) -> None:
        """A `</think>` with no `<think>`: the output so far was reasoning. Calls written in it
        are not calls; they go out as the text they were."""
        self._written = [
            item.raw if isinstance(item, PendingTool) else item for item in self._written
        ]

    def _text_piece(self, piece: Any, out: list[Event]) -> None:
        if isinstance(piece, ToolPiece):
            tool = PendingTool(
                name=piece.name, parsed=piece.arguments, complete=piece.complete, raw=piece.raw
            )
            self._written.append(tool)
        elif self._written:
            self._written.append(piece.text)
        else:
            self._text(piece.text, out)

    def _text(self, text: str, out: list[Event], hold: bool = True) -> None:
        if not text:
            return
        if self._api_tools:
            self._flush_pending(out, cut=False)
        if hold and self.options.tool_forced and not self._emitted_tool:
            self._held.append(text)
            return
        if self._open != "text":
            # Whitespace that opens a text block (the "\n\n" after </think>) is noise; dropping
            # all of it, whatever the chunking, keeps the result independent of chunk bounds.
            text = text.lstrip()
            if not text:
                return
            self._begin("text", {"type": "text", "text": ""}, out)
        self._chars_out += len(text)
        out.append(self._delta_event({"type": "text_delta", "text": text}))

    def _thinking(self, text: str, out: list[Event]) -> None:
        if self._api_tools or self._written:
            self._flush_pending(out, cut=False)
        if self._open != "thinking":
            self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
        self._chars_out += len(text)
        self._thinking_text.append(text)
        out.append(self._delta_event({"type": "thinking_delta", "thinking": text}))

    def _redacted(self, item: dict[str, Any], out: list[Event]) -> None:
        self._flush_pending(out, cut=False)
        self._close(out)
        self._index += 1
        block = {"type": "redacted_thinking", "data": redacted_data(item)}
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))

    # -- tools --------------------------------------------------------------------------
    def _flush_pending(self, out: list[Event], cut: bool) -> None:
        written, self._written = self._written, []
        for item in written:
            if isinstance(item, PendingTool):
                self._tool(item, cut, out)
            elif not only_control_tokens(item):
                self._text(item, out)
        for tool in self._api_tools.take():
            self._tool(tool, cut, out)

    def _tool(self, tool: PendingTool, cut: bool, out: list[Event]) -> None:
        if not tool.name:
            return
        self._close(out)
        arguments = tool.input(cut)
        if TRUNCATED_KEY in arguments:
            self.cut_tool_calls.append(tool.name)
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
        out.append(self._delta_event({"type": "input_json_delta", "partial_json": partial}))
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._emitted_tool = True
        self._held = []
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
            out.append(
                self._delta_event({"type": "signature_delta", "signature": "ccgate-" + digest})
            )
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = None

    def _delta_event(self, delta: dict[str, Any]) -> Event:
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

    def _unfinished(self, reason: str) -> ApiError:
        where = f"upstream {self.options.provider}"
        if reason.lower() == "error":
            return overloaded(f"{where} ended the answer with an error (finish_reason 'error')")
        return ApiError(
            500, "api_error", f"{where} ended the answer with an unknown finish_reason {reason!r}"
        )
