"""Incremental `<think>…</think>` splitter: text in, (kind, text) pieces out.

A tag may be split across chunk boundaries, so the splitter holds back any tail that could
still turn into a tag and releases it once the next chunk proves otherwise.

Many chat templates (DeepSeek-R1 distills, QwQ, the Qwen3 "Thinking" models, …) open `<think>`
in the prompt, so the model's output *starts inside* the reasoning and only the closing tag
appears. `start_inside=True` says so; a `<think>` the model writes anyway at the very start is
consumed. A closing tag with no opening one is never shown: it is reported as a piece of kind
`"closed"`, so the caller can treat what came before as reasoning where it still can.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

Kind = Literal["text", "thinking", "closed"]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
_OUTSIDE_TAGS = (OPEN_TAG, CLOSE_TAG)
_INSIDE_TAGS = (CLOSE_TAG,)

# Model families whose chat template always opens `<think>` in the prompt (the model writes
# only `</think>`): DeepSeek-R1 and its distills, QwQ, Qwen3 "-Thinking-2507" models.
_ALWAYS_OPEN = re.compile(r"deepseek-r1|r1-distill|qwq|thinking-2507", re.IGNORECASE)
# Families whose template opens `<think>` only when thinking is switched on
# (chat_template_kwargs enable_thinking / thinking): GLM-4.5+, Nemotron reasoning models.
_OPEN_WHEN_ASKED = re.compile(r"glm-4\.[5-9]|glm-z1|nemotron", re.IGNORECASE)


def starts_in_reasoning(model: str, thinking_wanted: bool) -> bool:
    """Whether the backend's output for `model` begins inside an already opened `<think>`."""
    if _ALWAYS_OPEN.search(model):
        return True
    return thinking_wanted and bool(_OPEN_WHEN_ASKED.search(model))


@lru_cache(maxsize=16)
def _reach(markers: tuple[str, ...]) -> tuple[int, str]:
    """How far back a marker can start, and the characters markers start with."""
    return max(len(m) for m in markers), "".join(sorted({m[0] for m in markers}))


def held_back(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `markers`."""
    # Fast path for the common chunk: no marker's first character near the end.
    size, firsts = _reach(markers)
    window = text[-size:]
    if not any(c in window for c in firsts):
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

    def __init__(self, start_inside: bool = False) -> None:
        self._inside = start_inside
        self._at_start = start_inside  # a leading `<think>` is still to be swallowed
        self._pending = ""
        self._fed = False

    @property
    def inside(self) -> bool:
        return self._inside

    def separated_by_server(self) -> None:
        """The server sends reasoning in its own field: the content is all answer."""
        if not self._fed:
            self._inside = self._at_start = False

    def feed(self, chunk: str) -> list[tuple[Kind, str]]:
        self._fed = True
        buf = self._pending + chunk
        self._pending = ""
        out: list[tuple[Kind, str]] = []
        if self._at_start:
            stripped = buf.lstrip()
            if not stripped or OPEN_TAG.startswith(stripped):
                self._pending = buf  # could still be the leading `<think>`
                return out
            self._at_start = False
            if stripped.startswith(OPEN_TAG):
                buf = stripped[len(OPEN_TAG) :]
        while buf:
            if "<" not in buf:  # the common chunk: no tag, nor the start of one
                out.append((self._kind(), buf))
                break
            if self._inside:
                pos, tag = buf.find(CLOSE_TAG), CLOSE_TAG
            else:
                pos, tag = _first(buf)
            if pos >= 0:
                if pos:
                    out.append((self._kind(), buf[:pos]))
                buf = buf[pos + len(tag) :]
                if tag == OPEN_TAG:
                    self._inside = True
                elif self._inside:
                    self._inside = False
                else:
                    out.append(("closed", ""))  # a close with no open: the tag is dropped
                continue
            keep = held_back(buf, _INSIDE_TAGS if self._inside else _OUTSIDE_TAGS)
            emit = buf[: len(buf) - keep] if keep else buf
            if emit:
                out.append((self._kind(), emit))
            self._pending = buf[len(buf) - keep :] if keep else ""
            break
        return out

    def flush(self) -> list[tuple[Kind, str]]:
        """End of stream: a half tag is just text; an unclosed `<think>` ends its block here."""
        pending, self._pending = self._pending, ""
        if self._at_start and OPEN_TAG.startswith(pending.strip()):
            return []  # nothing but (part of) the leading `<think>`
        return [(self._kind(), pending)] if pending else []

    def _kind(self) -> Kind:
        return "thinking" if self._inside else "text"


def _first(buf: str) -> tuple[int, str]:
    """The earlier of an opening and a closing tag in `buf` (outside reasoning)."""
    opened, closed = buf.find(OPEN_TAG), buf.find(CLOSE_TAG)
    if closed >= 0 and (opened < 0 or closed < opened):
        return closed, CLOSE_TAG
    return opened, OPEN_TAG
