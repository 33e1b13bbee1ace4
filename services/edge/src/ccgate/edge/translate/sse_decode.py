"""Incremental Server-Sent Events decoder: bytes in, (event, data) pairs out.

Chunk boundaries may fall anywhere — inside a line, inside `\\r\\n`, inside a UTF-8
character — so lines are cut on bytes and decoded only once complete.
"""

from __future__ import annotations


class SSEDecoder:
    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        buf = self._buf + chunk if self._buf else chunk
        out: list[tuple[str, str]] = []
        start = 0
        size = len(buf)
        while start < size:
            nl = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, nl if nl >= 0 else size)
            if cr >= 0:
                if cr == size - 1:  # a lone \r at the end may be the first half of \r\n
                    break
                end, nxt = cr, cr + (2 if buf[cr + 1 : cr + 2] == b"\n" else 1)
            elif nl >= 0:
                end, nxt = nl, nl + 1
            else:
                break
            self._line(buf[start:end].decode("utf-8", "replace"), out)
            start = nxt
        self._buf = buf[start:]
        return out

    def flush(self) -> list[tuple[str, str]]:
        """End of stream: a final event without its blank line still counts."""
        out: list[tuple[str, str]] = []
        if self._buf:
            self._line(self._buf.decode("utf-8", "replace").rstrip("\r"), out)
            self._buf = b""
        self._line("", out)
        return out

    def _line(self, line: str, out: list[tuple[str, str]]) -> None:
        if not line:
            if self._data:
                out.append((self._event or "message", "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line[0] == ":":
            return
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
