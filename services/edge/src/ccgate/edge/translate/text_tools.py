"""Tool calls that a model wrote as text, parsed incrementally into real tool calls.

Formats: Hermes/Qwen `<tool_call>{"name": …, "arguments": …}</tool_call>`, Qwen3-Coder
`<function=name><parameter=key>value</parameter></function>` (bare or inside `<tool_call>`),
and Mistral `[TOOL_CALLS][{…}]` / `[TOOL_CALLS]name[ARGS]{…}`. Only used when tools were
offered; anything that does not parse is given back as text, never dropped.

Slightly-off output is read the way vLLM's and llama.cpp's own parsers read it: text after a
Mistral call list stays text; a Qwen3-Coder `<parameter=…>` without its `</parameter>` ends at
the next `<parameter=`, at `</function>` or at the end; a Hermes call must be one JSON object
(anything else inside the tags is left as text rather than guessed at).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
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
    raw: str = field(default="", compare=False)  # the text the call was parsed from
    complete: bool = True  # False: an XML call that ended before its closing tag


Piece = TextPiece | ToolPiece

_ENDS = {"<tool_call>": "</tool_call>", "<function=": "</function>", "[TOOL_CALLS]": None}
_STARTS = tuple(_ENDS)
# vLLM's Qwen3-Coder rule: a value ends at `</parameter>`, or — when that is missing — at the
# next `<parameter=`, at `</function>`, or at the end of the call.
_PARAM = re.compile(
    r"<parameter=([^>\n]+)>(.*?)(?:</parameter>|(?=<parameter=)|(?=</function>)|$)", re.DOTALL
)
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
                if "<" not in buf and "[" not in buf:  # the common chunk: plain text
                    out.append(TextPiece(buf))
                    break
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
            out.extend(self._parse(body, closed=True))
            self._start = None
        return out

    def flush(self) -> list[Piece]:
        pending, self._pending = self._pending, ""
        start, self._start = self._start, None
        if not pending:
            return []
        if start is None:
            return [TextPiece(pending)]
        return self._parse(pending, closed=False)

    def _parse(self, body: str, closed: bool) -> list[Piece]:
        pieces: list[Piece] | None
        if body.startswith("[TOOL_CALLS]"):
            pieces = self._mistral(body[len("[TOOL_CALLS]") :])
        elif body.startswith("<tool_call>"):
            inner = body[len("<tool_call>") :].removesuffix("</tool_call>").strip()
            if inner.startswith("<function="):
                pieces = self._functions(inner, closed)
            else:
                calls = self._json(inner)
                pieces = list(calls) if calls else None
        else:
            pieces = self._functions(body, closed)
        if not pieces:
            return [TextPiece(body)]
        first = pieces[0]
        if isinstance(first, ToolPiece):  # the whole body is the first call's source text
            pieces[0] = ToolPiece(first.name, first.arguments, body, first.complete)
        return pieces

    def _json(self, text: str) -> list[ToolPiece] | None:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        return self._objects(data)

    def _objects(self, data: Any) -> list[ToolPiece] | None:
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

    def _functions(self, text: str, closed: bool) -> list[Piece] | None:
        calls: list[Piece] = []
        for match in _FUNCTION.finditer(text):
            name = match.group(1).strip()
            props = self._schemas.get(name, {}).get("properties", {})
            args = {
                key.strip(): self._typed(_param_value(value), props.get(key.strip(), {}))
                for key, value in _PARAM.findall(match.group(2))
            }
            ended = closed or match.group(0).endswith("</function>")
            calls.append(ToolPiece(name, args, match.group(0), ended))
        return calls or None

    @staticmethod
    def _typed(value: str, schema: dict[str, Any]) -> Any:
        if schema.get("type") == "string":
            return value
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value

    def _mistral(self, text: str) -> list[Piece] | None:
        """`[{…}, …]` (what follows the list is text, as llama.cpp keeps it) or the v11 form
        `name[ARGS]{…}`, repeated with `[TOOL_CALLS]` between calls."""
        text = text.strip()
        if text.startswith("["):
            decoded = _leading_json(text)
            if decoded is None:
                return None
            calls = self._objects(decoded[0])
            if not calls:
                return None
            rest = text[decoded[1] :]
            return [*calls, TextPiece(rest)] if rest.strip() else list(calls)
        pieces: list[Piece] = []
        for segment in text.split("[TOOL_CALLS]"):
            name, sep, args = segment.partition("[ARGS]")
            decoded = _leading_json(args.strip() or "{}") if sep else None
            if decoded is None or not isinstance(decoded[0], dict) or not name.strip():
                return None
            pieces.append(ToolPiece(name.strip(), decoded[0]))
            rest = args.strip()[decoded[1] :]
            if rest.strip():
                pieces.append(TextPiece(rest))
        return pieces or None


_DECODER = json.JSONDecoder()
# Chat-template control tokens small models leak after a call (`<|im_end|>`, `</s>`, …).
_CONTROL_TOKENS = re.compile(r"<\|[A-Za-z0-9_]+\|>|</s>|<eos>|<end_of_turn>")


def only_control_tokens(text: str) -> bool:
    """Whether text after a call is nothing but whitespace and leaked template tokens."""
    return not _CONTROL_TOKENS.sub("", text).strip()


def _leading_json(text: str) -> tuple[Any, int] | None:
    """The JSON value at the start of `text` and where it ends (trailing text allowed)."""
    try:
        return _DECODER.raw_decode(text)
    except ValueError:
        return None


def _param_value(value: str) -> str:
    """One newline after `<parameter=…>` and one before its end belong to the markup."""
    value = value.removeprefix("\n")
    return value.removesuffix("\n")
