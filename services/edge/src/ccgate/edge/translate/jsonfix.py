"""Tool-call arguments that are not valid JSON at the end of a stream: repair or report.

The usual damage is truncation (the model hit `max_tokens` mid-call), which closing the open
string, array and object brackets repairs. What cannot be repaired is handed to the client as
`{"__invalid_arguments__": raw}` so the tool fails visibly and the model sees why — never `{}`.
"""

from __future__ import annotations

from typing import Any

import orjson

INVALID_KEY = "__invalid_arguments__"


def _closers(text: str) -> str | None:
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
    suffix = ""
    if in_string:
        suffix = ("\\" if escaped else "") + '"'
    return suffix + "".join(reversed(stack))


def parse_arguments(raw: str) -> tuple[dict[str, Any], bool]:
    """(arguments, repaired). Arguments is always a dict."""
    text = raw.strip()
    if not text:
        return {}, False
    try:
        value = orjson.loads(text)
        if isinstance(value, dict):
            return value, False
    except orjson.JSONDecodeError:
        closers = _closers(text)
        if closers is not None:
            for candidate in (text + closers, text.rstrip(",: \n") + closers):
                try:
                    value = orjson.loads(candidate)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    return value, True
    return {INVALID_KEY: raw}, True
