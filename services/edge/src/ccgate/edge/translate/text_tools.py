"""Tool calls that a model wrote as text, parsed incrementally into real tool calls.

Formats: Hermes/Qwen `<tool_call>{"name": …, "arguments": …}</tool_call>`, Qwen3-Coder
`<function=name><parameter=key>value</parameter></function>` (bare or inside `<tool_call>`),
and Mistral `[TOOL_CALLS][{…}]` / `[TOOL_CALLS]name[ARGS]{…}`. Only used when tools were
offered; anything that does not parse is given back as text, never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from ccgate.edge.translate.thinking import held_back


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class ToolPiece:
    name: str
    arguments: dict[str, Any]


Piece = TextPiece | ToolPiece

_ENDS = {"<tool_call>": "</tool_call>", "<function=": "</function>", "[TOOL_CALLS]": None}
_STARTS = tuple(_ENDS)
_PARAM = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", re.DOTALL)
_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)(?:</function>|$)", re.DOTALL)


class TextToolParser:
    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self._schemas = schemas  # tool name -> input_schema, to type parameter values
        self._pending = ""
        self._start: str | None = None  # the marker we are inside, if any

    def feed(self, chunk: str) -> list[Piece]:
        buf = self._pending + chunk
        self._pending = ""
        out: list[Piece] = []
        while buf:
            if self._start is None:
                hits = [(buf.find(m), m) for m in _STARTS if m in buf]
                if hits:
                    pos, marker = min(hits)
                    if pos:
                        out.append(TextPiece(buf[:pos]))
                    self._start = marker
                    buf = buf[pos:]
                    continue
                keep = held_back(buf, _STARTS)
                if len(buf) > keep:
                    out.append(TextPiece(buf[: len(buf) - keep]))
                self._pending = buf[len(buf) - keep :] if keep else ""
                break
            end = _ENDS[self._start]
            pos = buf.find(end) if end else -1
            if pos < 0:
                self._pending = buf  # Mistral's form runs to the end of the message
                break
            body, buf = buf[: pos + len(end or "")], buf[pos + len(end or "") :]
            out.extend(self._parse(body))
            self._start = None
        return out

    def flush(self) -> list[Piece]:
        pending, self._pending = self._pending, ""
        start, self._start = self._start, None
        if not pending:
            return []
        if start is None:
            return [TextPiece(pending)]
        return self._parse(pending)

    def _parse(self, body: str) -> list[Piece]:
        calls: list[ToolPiece] | None
        if body.startswith("[TOOL_CALLS]"):
            calls = self._mistral(body[len("[TOOL_CALLS]") :])
        elif body.startswith("<tool_call>"):
            inner = body[len("<tool_call>") :].removesuffix("</tool_call>").strip()
            calls = self._functions(inner) if inner.startswith("<function=") else self._json(inner)
        else:
            calls = self._functions(body)
        return list(calls) if calls else [TextPiece(body)]

    def _json(self, text: str) -> list[ToolPiece] | None:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        items = data if isinstance(data, list) else [data]
        calls = [self._from_object(item) for item in items]
        return None if any(c is None for c in calls) else [c for c in calls if c]

    def _from_object(self, item: Any) -> ToolPiece | None:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("function"), dict):
            item = item["function"]
        name = item.get("name")
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = orjson.loads(args) if args.strip() else {}
            except orjson.JSONDecodeError:
                return None
        if not isinstance(name, str) or not isinstance(args, dict):
            return None
        return ToolPiece(name.strip(), args)

    def _functions(self, text: str) -> list[ToolPiece] | None:
        calls = []
        for match in _FUNCTION.finditer(text):
            name = match.group(1).strip()
            props = self._schemas.get(name, {}).get("properties", {})
            args = {
                key.strip(): self._typed(value, props.get(key.strip(), {}))
                for key, value in _PARAM.findall(match.group(2))
            }
            calls.append(ToolPiece(name, args))
        return calls or None

    @staticmethod
    def _typed(value: str, schema: dict[str, Any]) -> Any:
        if schema.get("type") == "string":
            return value
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value

    def _mistral(self, text: str) -> list[ToolPiece] | None:
        text = text.strip()
        if text.startswith("["):
            return self._json(text)
        calls = []
        for segment in text.split("[TOOL_CALLS]"):
            name, sep, args = segment.partition("[ARGS]")
            if not sep:
                return None
            try:
                parsed = orjson.loads(args.strip() or "{}")
            except orjson.JSONDecodeError:
                return None
            if not isinstance(parsed, dict):
                return None
            calls.append(ToolPiece(name.strip(), parsed))
        return calls or None
