"""Shape checks for an Anthropic Messages request, with errors that name the field and the fix.

Deliberately loose about what it does not need: unknown top-level fields, unknown block types
and beta features pass (Claude Code adds new ones with every release); only what translation
relies on is checked.
"""

from __future__ import annotations

from typing import Any

from ccgate.edge.translate.errors import invalid_request

_ROLES = ("user", "assistant", "system")
# Far above what Claude Code sends (it compacts long before), low enough to bound the work a
# single request can cause.
MAX_MESSAGES = 10_000
MAX_TOOLS = 1_000
MAX_BLOCKS_PER_MESSAGE = 10_000


def check_messages_request(body: Any, *, need_max_tokens: bool = True) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_request("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid_request("model: field required (a model name such as claude-sonnet-4-5)")
    if need_max_tokens:
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise invalid_request("max_tokens: field required (a positive integer)")
        if max_tokens < 1:
            raise invalid_request(f"max_tokens: must be at least 1, got {max_tokens}")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid_request("messages: field required (a list of {role, content} objects)")
    if not messages:
        raise invalid_request("messages: at least one message is required")
    if len(messages) > MAX_MESSAGES:
        raise invalid_request(
            f"messages: {len(messages)} messages is over this gateway's limit of {MAX_MESSAGES}; "
            "compact the conversation (/compact) and retry"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_request(f"messages.{i}: must be an object with role and content")
        role = message.get("role")
        if role not in _ROLES:
            raise invalid_request(f"messages.{i}.role: must be 'user' or 'assistant', got {role!r}")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise invalid_request(
                f"messages.{i}.content: must be a string or a list of content blocks"
            )
        if len(content) > MAX_BLOCKS_PER_MESSAGE:
            raise invalid_request(
                f"messages.{i}.content: over {MAX_BLOCKS_PER_MESSAGE} blocks in one message"
            )
        for j, block in enumerate(content):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise invalid_request(
                    f"messages.{i}.content.{j}: must be an object with a 'type' field"
                )
            _check_block(block, f"messages.{i}.content.{j}")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise invalid_request("system: must be a string or a list of text blocks")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid_request("tools: must be a list of tool definitions")
        if len(tools) > MAX_TOOLS:
            raise invalid_request(
                f"tools: {len(tools)} tools is over this gateway's limit of {MAX_TOOLS}"
            )
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise invalid_request(f"tools.{i}.name: field required")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise invalid_request(f"{name}: must be a number")
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)):
        raise invalid_request("top_k: must be an integer")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise invalid_request("stop_sequences: must be a list of strings")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise invalid_request("stream: must be true or false")
    return body


def _check_block(block: dict[str, Any], where: str) -> None:
    kind = block["type"]
    if kind == "text" and not isinstance(block.get("text"), str):
        raise invalid_request(f"{where}.text: field required for a text block")
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise invalid_request(f"{where}: tool_use blocks need 'id' and 'name'")
        if not isinstance(block.get("input", {}), dict):
            raise invalid_request(f"{where}.input: must be an object")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid_request(f"{where}.tool_use_id: field required for a tool_result block")
        content = block.get("content")
        if content is not None and not isinstance(content, str | list):
            raise invalid_request(f"{where}.content: must be a string or a list of blocks")
        for k, inner in enumerate(content if isinstance(content, list) else []):
            if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
                raise invalid_request(f"{where}.content.{k}: must be an object with a 'type' field")
            if inner["type"] in ("image", "document", "text"):
                _check_block(inner, f"{where}.content.{k}")
    elif kind in ("image", "document"):
        source = block.get("source")
        if not isinstance(source, dict) or not isinstance(source.get("type"), str):
            raise invalid_request(f"{where}.source: field required for an {kind} block")
