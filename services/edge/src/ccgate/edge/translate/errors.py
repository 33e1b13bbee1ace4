"""Anthropic-shaped errors, and the mapping from an upstream failure to the one Claude Code expects.

Claude Code's retry logic reads the status and the error type: 429 and 5xx/529 are retried
(honouring `retry-after` exactly), 400 "prompt is too long" triggers its compaction hint, and a
401 reads as "your key is bad" — so a provider rejecting *our* credentials must never be a 401.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import orjson


@dataclass(eq=False)  # not frozen: raising sets __traceback__ on the instance
class ApiError(Exception):
    status: int
    type: str
    message: str
    retry_after: float | None = None

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}}

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.message}"


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def too_slow(part: str, seconds: float) -> ApiError:
    """A client that sends its request head or body too slowly (slowloris) is cut off."""
    return ApiError(
        408, "invalid_request_error", f"the request {part} did not arrive within {seconds:g}s"
    )


def overloaded(message: str, retry_after: float | None = None) -> ApiError:
    return ApiError(529, "overloaded_error", message, retry_after)


def rate_limited(message: str, retry_after: float) -> ApiError:
    return ApiError(429, "rate_limit_error", message, retry_after)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import time

    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# How the servers word a context overflow: llama.cpp "request (N tokens) exceeds the available
# context size (M tokens)", vLLM/NIM/DeepSeek/OpenRouter "maximum context length is M tokens.
# However, you requested N tokens", LM Studio "…context length of only M tokens…", Ollama
# "input exceeds context length", OpenAI "context_length_exceeded", TensorRT-LLM/TGI
# "input length … exceeds …".
_CONTEXT_PATTERNS = re.compile(
    r"context[ _-]?length|context window|context size|maximum context|too many tokens"
    r"|prompt is too long|exceeds? the (?:model'?s? )?(?:maximum|max)|input is too long"
    r"|reduce the length|input (?:length|tokens?) .{0,40}exceeds?|exceed_context_size",
    re.IGNORECASE,
)
# vLLM ≥0.9: the *output* budget is what does not fit; compacting would not help.
_MAX_TOKENS_TOO_LARGE = re.compile(
    r"max_(?:completion_)?tokens'? (?:or '?max_completion_tokens'? )?is too large", re.IGNORECASE
)
_NUMBERS = re.compile(r"\d[\d,]*")


def upstream_message(body: bytes) -> str:
    """The human message inside an upstream error body (OpenAI, Anthropic or plain text)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return text[:500]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("msg")
            if isinstance(msg, str):
                return msg[:500]
        if isinstance(err, str):
            return err[:500]
        detail = data.get("detail") or data.get("message")
        if isinstance(detail, str):
            return detail[:500]
    return text[:500]


def prompt_too_long(message: str, used: int | None = None, limit: int | None = None) -> ApiError:
    """Claude Code recognises `prompt is too long: N tokens > M maximum` and suggests /compact.

    `used`/`limit` when the server said them as fields (llama.cpp); else the first two token
    counts in the message — the larger is what was asked, the smaller the window.
    """
    if used is None or limit is None:
        numbers = [int(n.replace(",", "")) for n in _NUMBERS.findall(message)]
        numbers = [n for n in numbers if n >= 100]
        if len(numbers) >= 2:
            limit, used = min(numbers[:2]), max(numbers[:2])
    if used is not None and limit is not None:
        return invalid_request(f"prompt is too long: {used} tokens > {limit} maximum")
    return invalid_request(f"prompt is too long: {message}")


def context_overflow(body: Any, message: str, where: str) -> ApiError | None:
    """The Anthropic error for an upstream context overflow, or None when it is not one."""
    err = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(err, dict):
        used, limit = err.get("n_prompt_tokens"), err.get("n_ctx")  # llama.cpp's own fields
        if isinstance(used, int) and isinstance(limit, int) and used > 0 and limit > 0:
            return prompt_too_long(message, used, limit)
    if _MAX_TOKENS_TOO_LARGE.search(message):
        return invalid_request(
            f"{where} rejected max_tokens: {message} (lower CLAUDE_CODE_MAX_OUTPUT_TOKENS, "
            "or load the model with a larger context)"
        )
    if _CONTEXT_PATTERNS.search(message) or (
        isinstance(err, dict) and err.get("type") == "exceed_context_size_error"
    ):
        return prompt_too_long(message)
    return None


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def from_upstream(
    status: int,
    body: bytes,
    retry_after: str | None,
    provider: str,
    key_setting: str,
) -> ApiError:
    """Map a non-200 upstream answer (before any byte went to the client)."""
    message = upstream_message(body)
    where = f"upstream {provider}"
    if status == 429:
        wait = parse_retry_after(retry_after)
        return rate_limited(f"{where} is rate limited: {message}", 5.0 if wait is None else wait)
    if status in (401, 403):
        return ApiError(
            502,
            "api_error",
            f"{where} rejected the gateway's credentials ({status}); check {key_setting} "
            "in the gateway's environment",
        )
    if status == 404:
        return ApiError(404, "not_found_error", f"{where} answered 404: {message}")
    if status == 413:
        return ApiError(413, "request_too_large", f"{where}: request too large: {message}")
    if status in (400, 413, 422, 500):
        overflow = context_overflow(_json_or_none(body), message, where)
        if overflow is not None:
            return overflow
    if status in (400, 422):
        return invalid_request(f"{where} rejected the request: {message}")
    if status == 408 or status in (502, 503, 504, 529):
        return overloaded(f"{where} is overloaded or unavailable ({status}): {message}")
    if status >= 500:
        return ApiError(500, "api_error", f"{where} failed ({status}): {message}")
    return ApiError(502, "api_error", f"{where} answered {status}: {message}")


def from_stream_error(payload: Any, provider: str) -> ApiError:
    """An error object that arrived inside a 200 stream (OpenAI-compatible servers do this)."""
    err = payload.get("error", payload) if isinstance(payload, dict) else payload
    message = str(err.get("message", err) if isinstance(err, dict) else err)[:500]
    code = err.get("code") if isinstance(err, dict) else None
    if code == 429 or "rate limit" in message.lower():
        return rate_limited(f"upstream {provider} is rate limited: {message}", 5.0)
    overflow = context_overflow(payload, message, f"upstream {provider}")
    if overflow is not None:
        return overflow
    return overloaded(f"upstream {provider} failed mid-stream: {message}")
