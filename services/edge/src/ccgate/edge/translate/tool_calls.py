"""Streamed OpenAI tool-call fragments → whole calls, one per call the backend meant.

Backends disagree on how fragments name their call. The usual form is `index` on every
fragment and `id` + `name` on the first; but parallel calls may all carry `index: 0` with
distinct ids (Bedrock behind LiteLLM, Gemini proxies), ids may come only once, `index` may be
missing, and `arguments` may arrive as an object instead of a string. The rule here: a fragment
with an id not seen before *and* a name starts a new call; otherwise it continues the call its
id, else its index, else the latest call names.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from ccgate.edge.translate.jsonfix import parse_arguments

# The input of a call cut off by max_tokens: never something a tool could run with.
TRUNCATED_KEY = "__truncated_arguments__"


def new_tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


@dataclass
class PendingTool:
    # Fresh ids, never the backend's: local servers reuse `call_0` every turn, and Claude Code
    # silently drops a tool_use whose id it has already seen.
    id: str = field(default_factory=new_tool_id)
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    parsed: dict[str, Any] | None = None
    complete: bool = True  # False: cut off before its end (a text-written call's closing tag)
    raw: str = ""  # a text-written call's source text

    def input(self, cut: bool) -> dict[str, Any]:
        """The call's arguments; `cut` (the output hit max_tokens) marks unfinished ones."""
        if self.parsed is not None:
            if cut and not self.complete:
                return {TRUNCATED_KEY: self.parsed}
            return self.parsed
        raw = "".join(self.arguments)
        arguments, repaired = parse_arguments(raw)
        if cut and (repaired or not raw.strip()):
            # A half-written Write or Edit must not look complete: no repair, a marker instead.
            return {TRUNCATED_KEY: raw}
        return arguments


class ToolCallGatherer:
    def __init__(self) -> None:
        self.calls: list[PendingTool] = []
        self._by_id: dict[str, PendingTool] = {}
        self._by_index: dict[int | str, PendingTool] = {}

    def __bool__(self) -> bool:
        return bool(self.calls)

    def add(self, fragments: list[Any]) -> None:
        touched: set[int] = set()
        for fragment in fragments:
            if not isinstance(fragment, dict):
                continue
            fn: dict[str, Any] = (
                fragment["function"] if isinstance(fragment.get("function"), dict) else {}
            )
            name = _text(fn.get("name"))
            call_id = _text(fragment.get("id"))
            index = fragment.get("index")
            if not isinstance(index, int | str) or index == "":
                index = None
            tool = self._find(call_id, index, name, touched)
            if tool is None:
                tool = PendingTool()
                self.calls.append(tool)
            touched.add(id(tool))
            if call_id is not None:
                self._by_id[call_id] = tool
            if index is not None:
                self._by_index[index] = tool
            if name and not tool.name:
                tool.name = name
            args = fn.get("arguments")
            if isinstance(args, str):
                tool.arguments.append(args)
            elif isinstance(args, dict):  # some servers send an object, not a string
                tool.parsed = args

    def take(self) -> list[PendingTool]:
        calls, self.calls = self.calls, []
        self._by_id.clear()
        self._by_index.clear()
        return calls

    def _find(
        self, call_id: str | None, index: int | str | None, name: str | None, touched: set[int]
    ) -> PendingTool | None:
        if call_id is not None:
            known = self._by_id.get(call_id)
            if known is not None:
                return known
            if name:
                return None  # a new id with a name: a new call, whatever its index says
        if index is not None:
            return self._by_index.get(index)
        latest = self.calls[-1] if self.calls else None
        if latest is not None and name and id(latest) in touched:
            return None  # a second named call in one chunk without ids or indices
        return latest


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
