"""An OpenAI-compatible backend's SSE body → Anthropic events: the SSE decoder's frames, each
parsed once and fed to the translator; `[DONE]`, error frames and a body cut short handled."""

from __future__ import annotations

import orjson

from ccgate.edge.translate.errors import ApiError, from_stream_error
from ccgate.edge.translate.sse_decode import SSEDecoder
from ccgate.edge.translate.stream import Event, StreamTranslator


class OpenAIStreamDecoder:
    """Upstream bytes → Anthropic events, through the SSE decoder and the translator."""

    def __init__(self, translator: StreamTranslator, provider: str) -> None:
        self.translator = translator
        self._provider = provider
        self._sse = SSEDecoder()
        self.done = False  # [DONE] or a finish_reason was seen

    def feed(self, data: bytes) -> list[Event]:
        return self._events(self._sse.feed(data))

    def feed_first(self, data: bytes) -> list[list[Event]]:
        """`feed` for reads before the first content: the events up to it come out as a batch
        of their own. One read may hold a whole answer's frames (a fast local server), and
        decoding and translating all of them before writing any delayed the first token by
        that much. Frame by frame until one gives events (the SSE decoder takes any cut)."""
        start = 0
        while start < len(data):
            cut = data.find(b"\n\n", start)
            end = len(data) if cut < 0 else cut + 2
            first = self.feed(data[start:end])
            start = end
            if first:
                rest = self.feed(data[start:]) if start < len(data) else []
                return [first, rest] if rest else [first]
        return []

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
                if event == "error":
                    raise from_stream_error(data, self._provider) from None
                continue  # keep-alive comments and junk lines are not content
            if event == "error":
                raise from_stream_error(chunk, self._provider)
            if isinstance(chunk, dict):
                out.extend(self.translator.feed(chunk))
        return out
