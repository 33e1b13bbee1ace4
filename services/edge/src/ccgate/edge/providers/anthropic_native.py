"""Pass-through for backends that speak the Messages API natively (DeepSeek's /anthropic,
recent Ollama, another gateway). The body goes on with only the model name rewritten, always
streamed; events come back re-checked, with the client's model name restored."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ccgate.edge.providers.base import (
    ResponseCall,
    Timeouts,
    UpstreamClient,
    UpstreamResponse,
    body_chunks,
    send,
)
from ccgate.edge.providers.table import Provider
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.sse_decode import SSEDecoder
from ccgate.edge.translate.stream import Event

_ERROR_STATUS = {
    "invalid_request_error": 400,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def stream_error(payload: dict[str, Any], provider: str) -> ApiError:
    error: dict[str, Any] = payload["error"] if isinstance(payload.get("error"), dict) else {}
    kind = str(error.get("type", "api_error"))
    message = f"upstream {provider}: {error.get('message', 'error')}"
    if kind not in _ERROR_STATUS:  # its auth errors are about *our* key, not the client's
        return ApiError(500, "api_error", message)
    return ApiError(_ERROR_STATUS[kind], kind, message)


class AnthropicCall(ResponseCall):
    def __init__(self, response: UpstreamResponse, provider: str, client_model: str) -> None:
        super().__init__(response)
        self._provider = provider
        self._client_model = client_model

    async def events(self) -> AsyncIterator[list[Event]]:
        decoder = SSEDecoder()
        stopped = False
        async for chunk in body_chunks(self._response, self._provider):
            events, error = self._convert(decoder.feed(chunk))
            if events:
                stopped = stopped or events[-1][0] == "message_stop"
                yield events
            if error is not None:
                raise error
        events, error = self._convert(decoder.flush())
        if error is not None:
            if events:
                yield events
            raise error
        stopped = stopped or any(name == "message_stop" for name, _ in events)
        if not stopped:
            raise ApiError(
                500,
                "api_error",
                f"upstream {self._provider} ended the stream before the model finished",
            )
        if events:
            yield events

    def _convert(self, items: list[tuple[str, str]]) -> tuple[list[Event], ApiError | None]:
        """The events of one read, and the upstream's error event if one came: the events
        before it still go out first (one read may carry message_start and the error)."""
        out: list[Event] = []
        info = self.info
        for name, data in items:
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(payload, dict):
                continue
            kind = payload.get("type", name)
            if kind == "error":
                return out, stream_error(payload, self._provider)
            if kind == "message_start":
                message = payload.get("message") or {}
                info.response_model = message.get("model")
                message["model"] = self._client_model
                info.input_tokens = (message.get("usage") or {}).get("input_tokens")
            elif kind == "content_block_start":
                block = payload.get("content_block") or {}
                if block.get("type") == "tool_use":
                    info.tool_calls.append((str(block.get("id")), str(block.get("name"))))
                if info.first_token_at is None:
                    info.first_token_at = time.monotonic()
            elif kind == "message_delta":
                usage = payload.get("usage") or {}
                info.output_tokens = usage.get("output_tokens", info.output_tokens)
                if usage.get("input_tokens") is not None:
                    info.input_tokens = usage["input_tokens"]
                info.stop_reason = (payload.get("delta") or {}).get("stop_reason")
            out.append((str(kind), payload))
        return out, None


async def open_call(
    client: UpstreamClient,
    provider: Provider,
    req: dict[str, Any],
    upstream_model: str,
    timeouts: Timeouts,
    headers: dict[str, str],
) -> AnthropicCall:
    body = {**req, "model": upstream_model, "stream": True}
    forwarded = {"anthropic-version": "2023-06-01", "accept": "text/event-stream", **headers}
    response = await send(client, provider, body, forwarded, timeouts)
    return AnthropicCall(response, provider.id, str(req["model"]))
