"""One adapter for every OpenAI-compatible backend: translate, stream, translate back.

A streaming client request streams from the backend; a non-streaming one (with
`stream_upstream=False`) makes one non-streaming call, whose answer goes through the same
translator as a single chunk (`translate/completion.py`)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ccgate.edge.providers.base import (
    ResponseCall,
    Timeouts,
    UpstreamClient,
    UpstreamFailure,
    UpstreamResponse,
    body_chunks,
    send_while,
)
from ccgate.edge.providers.table import Provider
from ccgate.edge.translate.completion import completion_chunk
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.openai_stream import OpenAIStreamDecoder
from ccgate.edge.translate.request import thinking_wanted, to_openai
from ccgate.edge.translate.stream import Event, StreamOptions, StreamTranslator
from ccgate.edge.translate.target import Target
from ccgate.edge.translate.thinking import starts_in_reasoning
from ccgate.edge.translate.tools import tool_forced, tool_schemas

log = logging.getLogger("ccgate.edge")


class OpenAICall(ResponseCall):
    def __init__(
        self,
        response: UpstreamResponse,
        decoder: OpenAIStreamDecoder,
        provider: str,
        exact_input_tokens: Callable[[], int],
    ) -> None:
        super().__init__(response)
        self._decoder = decoder
        self._provider = provider
        self._exact_input_tokens = exact_input_tokens

    async def events(self) -> AsyncIterator[list[Event]]:
        translator = self._decoder.translator
        yield translator.start()
        async for chunk in body_chunks(self._response, self._provider):
            if self.info.first_token_at is None:
                batches = self._decoder.feed_first(chunk)
                if batches:
                    self.info.first_token_at = time.monotonic()
                for events in batches:
                    yield events
                continue
            events = self._decoder.feed(chunk)
            if events:
                yield events
        yield self._finished(self._decoder.end(self._fallback_tokens()))

    def _fallback_tokens(self) -> int | None:
        """The backend's own prompt count when it gave one; else the offline count, computed
        only now so that a backend that reports usage costs no tokenizer time at all."""
        if self._decoder.translator.prompt_tokens is not None:
            return None
        return self._exact_input_tokens()

    def _finished(self, final: list[Event]) -> list[Event]:
        translator = self._decoder.translator
        info = self.info
        info.response_model = translator.response_model
        info.tool_calls = translator.tool_calls
        if translator.cut_tool_calls:
            log.warning(
                "upstream %s hit max_tokens while writing tool call(s) %s: sent with their "
                "arguments marked truncated, stop_reason max_tokens",
                self._provider,
                ", ".join(translator.cut_tool_calls),
            )
        delta = next(d for name, d in final if name == "message_delta")
        info.stop_reason = delta["delta"]["stop_reason"]
        info.input_tokens = delta["usage"]["input_tokens"]
        info.output_tokens = delta["usage"]["output_tokens"]
        return final


class CompletionCall(OpenAICall):
    """A non-streaming upstream call: the whole answer, read, becomes one chunk — unless the
    server ignored `stream: false` and streams anyway, which is then read as the stream it is."""

    async def events(self) -> AsyncIterator[list[Event]]:
        if self._response.content_type == "text/event-stream":
            async for events in super().events():
                yield events
            return
        translator = self._decoder.translator
        parts = [chunk async for chunk in body_chunks(self._response, self._provider)]
        self.info.first_token_at = time.monotonic()
        events = translator.start()
        events += translator.feed(completion_chunk(b"".join(parts), self._provider))
        yield self._finished(events + translator.finish(self._fallback_tokens()))


async def open_call(
    client: UpstreamClient,
    provider: Provider,
    req: dict[str, Any],
    target: Target,
    timeouts: Timeouts,
    input_estimate: int,
    exact_input_tokens: Callable[[], int],
    headers: dict[str, str],
    warnings: list[str],
    stream_upstream: bool = True,
    extra_body: dict[str, Any] | None = None,
) -> OpenAICall:
    try:
        body, notes = to_openai(req, target)
    except ApiError as exc:
        raise UpstreamFailure(exc, retryable=False) from exc
    body.update(extra_body or {})  # provider fields the translation does not know (num_ctx)
    warnings.extend(notes)
    accept = "text/event-stream"
    if not stream_upstream:
        body["stream"] = False
        body.pop("stream_options", None)
        accept = "application/json"

    def decoder() -> OpenAIStreamDecoder:  # built while the backend works on the request
        schemas = tool_schemas(req)
        options = StreamOptions(
            model=str(req["model"]),
            input_tokens=input_estimate,
            think_tags=target.quirks.think_tags,
            tool_schemas=schemas or None,
            stop_sequences=tuple(req.get("stop_sequences") or ()),
            thinking_open=starts_in_reasoning(target.model, thinking_wanted(req, target)),
            provider=provider.id,
            tool_forced=tool_forced(req),
        )
        return OpenAIStreamDecoder(StreamTranslator(options), provider.id)

    response, made = await send_while(
        client, provider, body, {"accept": accept, **headers}, timeouts, decoder
    )
    call = OpenAICall if stream_upstream else CompletionCall
    return call(response, made, provider.id, exact_input_tokens)
