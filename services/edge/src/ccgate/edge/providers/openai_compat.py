"""One adapter for every OpenAI-compatible backend: translate, stream, translate back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from ccgate.edge.providers.base import ResponseCall, Timeouts, UpstreamFailure, body_chunks, send
from ccgate.edge.providers.table import Provider
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.request import to_openai, tool_schemas
from ccgate.edge.translate.stream import Event, OpenAIStreamDecoder, StreamOptions, StreamTranslator
from ccgate.edge.translate.target import Target


class OpenAICall(ResponseCall):
    def __init__(
        self,
        response: httpx.Response,
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
            events = self._decoder.feed(chunk)
            if events:
                if self.info.first_token_at is None:
                    self.info.first_token_at = time.monotonic()
                yield events
        # The backend's own prompt count when it gave one; else the offline count, computed
        # only now so that a backend that reports usage costs no tokenizer time at all.
        fallback = None if translator.prompt_tokens is not None else self._exact_input_tokens()
        final = self._decoder.end(fallback)
        info = self.info
        info.response_model = translator.response_model
        info.tool_calls = translator.tool_calls
        delta = next(d for name, d in final if name == "message_delta")
        info.stop_reason = delta["delta"]["stop_reason"]
        info.input_tokens = delta["usage"]["input_tokens"]
        info.output_tokens = delta["usage"]["output_tokens"]
        yield final


async def open_call(
    client: httpx.AsyncClient,
    provider: Provider,
    req: dict[str, Any],
    target: Target,
    timeouts: Timeouts,
    input_estimate: int,
    exact_input_tokens: Callable[[], int],
    headers: dict[str, str],
    warnings: list[str],
    extra_body: dict[str, Any] | None = None,
) -> OpenAICall:
    try:
        body, notes = to_openai(req, target)
    except ApiError as exc:
        raise UpstreamFailure(exc, retryable=False) from exc
    body.update(extra_body or {})  # provider fields the translation does not know (num_ctx)
    warnings.extend(notes)
    response = await send(
        client, provider, body, {"accept": "text/event-stream", **headers}, timeouts
    )
    schemas = tool_schemas(req)
    options = StreamOptions(
        model=str(req["model"]),
        input_tokens=input_estimate,
        think_tags=target.quirks.think_tags,
        tool_schemas=schemas or None,
        stop_sequences=tuple(req.get("stop_sequences") or ()),
    )
    decoder = OpenAIStreamDecoder(StreamTranslator(options), provider.id)
    return OpenAICall(response, decoder, provider.id, exact_input_tokens)
