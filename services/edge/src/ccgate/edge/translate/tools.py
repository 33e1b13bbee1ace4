"""Anthropic tool definitions → OpenAI functions, and what the answer's translation needs to
know of the offered tools. Pure: data in, data out."""

from __future__ import annotations

from typing import Any

from ccgate.edge.translate.target import Target

JSON = dict[str, Any]

# Tool kinds the Anthropic API runs server-side; an OpenAI backend has nothing to run them.
_SERVER_TOOL_PREFIXES = (
    "web_search",
    "web_fetch",
    "code_execution",
    "tool_search_tool",
    "computer_",
    "mcp",
    "memory",
)


def clean_schema(schema: Any, drop: frozenset[str]) -> Any:
    if isinstance(schema, dict):
        return {k: clean_schema(v, drop) for k, v in schema.items() if k not in drop}
    if isinstance(schema, list):
        return [clean_schema(v, drop) for v in schema]
    return schema


def is_server_tool(tool: JSON) -> bool:
    kind = tool.get("type")
    return isinstance(kind, str) and kind != "custom" and kind.startswith(_SERVER_TOOL_PREFIXES)


def convert_tools(req: JSON, target: Target, warnings: list[str]) -> list[JSON]:
    tools = []
    for tool in req.get("tools") or []:
        if is_server_tool(tool):
            warnings.append(f"removed server tool {tool.get('name')!r} ({tool.get('type')})")
            continue
        if tool.get("defer_loading"):
            continue  # deferred tools are loaded on demand through ToolSearch, not shown up front
        schema = tool.get("input_schema") or {"type": "object", "properties": {}}
        function: JSON = {
            "name": tool["name"],
            "parameters": clean_schema(schema, target.quirks.schema_drop_keys),
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    return tools


def openai_tool_choice(choice: Any) -> Any:
    """Anthropic's tool_choice as OpenAI's; None where OpenAI has no equivalent."""
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    return None


def tool_forced(req: JSON) -> bool:
    """tool_choice `any` or `tool`: the answer must be a call (with tools to call)."""
    choice = req.get("tool_choice")
    return (
        isinstance(choice, dict)
        and choice.get("type") in ("any", "tool")
        and bool(tool_schemas(req))
    )


def tool_schemas(req: JSON) -> dict[str, dict[str, Any]]:
    """Offered tools by name → input schema (for parsing tool calls written as text)."""
    return {
        t["name"]: t.get("input_schema") or {}
        for t in req.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("name"), str) and not is_server_tool(t)
    }
