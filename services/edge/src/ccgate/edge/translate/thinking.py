"""Incremental `<think>…</think>` splitter: text in, (kind, text) pieces out.

A tag may be split across chunk boundaries, so the splitter holds back any tail that could
still turn into a tag and releases it once the next chunk proves otherwise.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["text", "thinking"]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


def held_back(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `markers`."""
    # Fast path for the common chunk: no marker's first character near the end.
    window = text[-max(len(m) for m in markers) :]
    if not any(m[0] in window for m in markers):
        return 0
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if marker.startswith(text[-size:]):
                longest = size
                break
    return longest


class ThinkSplitter:
    """Feed content deltas; get back pieces labelled text or thinking, in order."""

    def __init__(self) -> None:
        self._inside = False
        self._pending = ""

    @property
    def inside(self) -> bool:
        return self._inside

    def feed(self, chunk: str) -> list[tuple[Kind, str]]:
        buf = self._pending + chunk
        self._pending = ""
        out: list[tuple[Kind, str]] = []
        while buf:
            tag = CLOSE_TAG if self._inside else OPEN_TAG
            pos = buf.find(tag)
            if pos >= 0:
                if pos:
                    out.append((self._kind(), buf[:pos]))
                buf = buf[pos + len(tag) :]
                self._inside = not self._inside
                continue
            keep = held_back(buf, (tag,))
            emit = buf[: len(buf) - keep] if keep else buf
            if emit:
                out.append((self._kind(), emit))
            self._pending = buf[len(buf) - keep :] if keep else ""
            break
        return out

    def flush(self) -> list[tuple[Kind, str]]:
        """End of stream: a half tag is just text; an unclosed `<think>` ends its block here."""
        pending, self._pending = self._pending, ""
        return [(self._kind(), pending)] if pending else []

    def _kind(self) -> Kind:
        return "thinking" if self._inside else "text"
