"""Claude Code's `--output-format stream-json` events → short progress items for a chat.
Pure: one JSON line in, items out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# The argument that says what a tool call is about, per tool.
KEY_ARGUMENT = {
    "Bash": "command",
    "Read": "file_path",
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
    "Glob": "pattern",
    "Grep": "pattern",
    "LS": "path",
    "WebFetch": "url",
    "WebSearch": "query",
    "Task": "description",
    "Agent": "description",
}


@dataclass(frozen=True)
class ToolUse:
    name: str
    argument: str


@dataclass(frozen=True)
class Thinking:
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Started:
    session_id: str


@dataclass(frozen=True)
class Finished:
    session_id: str | None
    text: str
    is_error: bool
    denied: tuple[str, ...] = ()


Item = ToolUse | Thinking | Text | Started | Finished


def short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_line(line: str | bytes) -> list[Item]:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(event, dict):
        return []
    kind = event.get("type")
    if (
        kind == "system"
        and event.get("subtype") == "init"
        and isinstance(event.get("session_id"), str)
    ):
        return [Started(event["session_id"])]
    if kind == "assistant":
        message = event.get("message") or {}
        items: list[Item] = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                name = str(block.get("name", "tool"))
                args = block.get("input") or {}
                key = KEY_ARGUMENT.get(name)
                argument = args.get(key) if isinstance(args, dict) and key else None
                items.append(ToolUse(name, short(argument if argument is not None else args)))
            elif block.get("type") == "thinking" and block.get("thinking"):
                items.append(Thinking(short(block["thinking"], 300)))
            elif block.get("type") == "text" and block.get("text"):
                items.append(Text(str(block["text"])))
        return items
    if kind == "result":
        denied = tuple(
            str(d.get("tool_name"))
            for d in event.get("permission_denials") or []
            if isinstance(d, dict)
        )
        return [
            Finished(
                event.get("session_id"),
                str(event.get("result") or ""),
                bool(event.get("is_error")),
                denied,
            )
        ]
    return []
