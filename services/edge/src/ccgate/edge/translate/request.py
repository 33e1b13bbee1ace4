"""Anthropic Messages request → OpenAI chat-completions request. Pure: data in, data out.

Returns the body and a list of warnings (things removed or changed) for the caller to log.
The upstream request is always streamed; the non-streaming answer is assembled from the same
events, so both paths give the same message.
"""

from __future__ import annotations

from typing import Any

import orjson

from ccgate.edge.translate.errors import invalid_request
from ccgate.edge.translate.reasoning import detail_from_redacted
from ccgate.edge.translate.structured import response_format
from ccgate.edge.translate.target import Target
from ccgate.edge.translate.tools import convert_tools, openai_tool_choice

JSON = dict[str, Any]

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"


def system_text(system: Any) -> str:
    """The system prompt as text: cache_control dropped, Claude Code's billing line removed
    (it changes every release and would defeat the backend's prefix cache)."""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        return ""
    parts = []
    for block in system:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            text = block["text"]
            if text.startswith(BILLING_HEADER_PREFIX):
                continue
            parts.append(text)
    return "\n\n".join(parts)


def _image_part(block: JSON, where: str) -> JSON:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif kind == "url":
        url = source.get("url", "")
    else:
        raise invalid_request(f"{where}.source.type: image sources must be 'base64' or 'url'")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_text(block: JSON, where: str) -> str:
    source = block.get("source") or {}
    kind = source.get("type")
    title = block.get("title")
    if kind == "text":
        text = str(source.get("data", ""))
    elif kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            text = inner
        else:
            text = "\n".join(
                b.get("text", "")
                for b in inner or []
                if isinstance(b, dict) and b.get("type") == "text"
            )
    else:
        raise invalid_request(
            f"{where}: this backend takes no {source.get('media_type') or kind} documents; "
            "send the document as text (a text block, or a document with source.type 'text')"
        )
    return (
        f"<document title={orjson.dumps(title).decode()}>\n{text}\n</document>" if title else text
    )


def _tool_result_text(block: JSON, where: str) -> tuple[str, list[JSON]]:
    """A tool_result's content as text, plus any images in it (sent after as a user message)."""
    content = block.get("content")
    images: list[JSON] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        parts = []
        for k, item in enumerate(content):
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "text":
                parts.append(str(item.get("text", "")))
            elif kind == "image":
                images.append(_image_part(item, f"{where}.content.{k}"))
            elif kind == "document":
                parts.append(_document_text(item, f"{where}.content.{k}"))
            elif kind == "tool_reference":
                parts.append(f"Tool loaded: {item.get('tool_name', '')}")
            else:
                parts.append(orjson.dumps(item).decode())
        text = "\n".join(parts)
    if block.get("is_error"):
        # The model must see that the tool failed; OpenAI tool messages have no error flag.
        text = f"[tool error] {text}" if text else "[tool error]"
    return text, images


def _user_parts(content: Any, where: str, quirks_images: bool) -> tuple[list[JSON], list[JSON]]:
    """(tool messages, user content parts) for one Anthropic user message."""
    if isinstance(content, str):
        return [], [{"type": "text", "text": content}] if content else []
    tool_messages: list[JSON] = []
    parts: list[JSON] = []
    trailing_images: list[JSON] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        here = f"{where}.content.{j}"
        if kind == "text":
            if block.get("text"):
                parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            if not quirks_images:
                raise invalid_request(
                    f"{here}: the configured backend model takes no images; "
                    "route this tier to a vision model or remove the image"
                )
            parts.append(_image_part(block, here))
        elif kind == "document":
            parts.append({"type": "text", "text": _document_text(block, here)})
        elif kind == "tool_result":
            text, images = _tool_result_text(block, here)
            tool_messages.append(
                {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}
            )
            if images and quirks_images:
                trailing_images.append(
                    {
                        "type": "text",
                        "text": f"(images returned by tool call {block['tool_use_id']})",
                    }
                )
                trailing_images.extend(images)
        # thinking / redacted_thinking / unknown blocks in a user turn carry nothing to send
    return tool_messages, trailing_images + parts


def _assistant_message(content: Any, keep_reasoning: bool, keep_details: bool) -> JSON:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    reasoning: list[str] = []
    details: list[JSON] = []  # OpenRouter's encrypted reasoning, handed back unchanged
    calls: list[JSON] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking" and keep_reasoning:
            reasoning.append(block.get("thinking", ""))
        elif kind == "redacted_thinking" and keep_details:
            detail = detail_from_redacted(block.get("data"))
            if detail is not None:
                details.append(detail)
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: JSON = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if details:
        message["reasoning_details"] = details
    return message


def _merge(messages: list[JSON]) -> list[JSON]:
    """Consecutive user or assistant messages become one (many chat templates require it)."""
    merged: list[JSON] = []
    for message in messages:
        prev = merged[-1] if merged else None
        if (
            prev is None
            or prev["role"] != message["role"]
            or message["role"] not in ("user", "assistant")
        ):
            merged.append(message)
            continue
        if message["role"] == "user":
            prev["content"] = _as_parts(prev["content"]) + _as_parts(message["content"])
        else:
            text = (prev.get("content") or "") + (message.get("content") or "")
            prev["content"] = text or (
                None if prev.get("tool_calls") or message.get("tool_calls") else ""
            )
            if message.get("tool_calls"):
                prev["tool_calls"] = prev.get("tool_calls", []) + message["tool_calls"]
            if message.get("reasoning_content"):
                prev["reasoning_content"] = (
                    prev.get("reasoning_content", "") + message["reasoning_content"]
                )
    for message in merged:
        if message["role"] == "user":
            message["content"] = _simplify(message["content"])
    return merged


def _as_parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def _simplify(content: Any) -> Any:
    """Text-only content goes as one string: every OpenAI-compatible server takes that."""
    if isinstance(content, list) and all(p.get("type") == "text" for p in content):
        return "\n\n".join(p["text"] for p in content)
    return content


def convert_messages(req: JSON, target: Target) -> list[JSON]:
    keep_reasoning = target.quirks.reasoning_history == "reasoning_content"
    keep_details = target.quirks.reasoning_control == "openrouter"
    out: list[JSON] = []
    system = system_text(req.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(req["messages"]):
        role, content = message["role"], message["content"]
        if role == "system":
            # Claude Code puts role:"system" messages mid-conversation; most chat templates
            # accept a system message only first, so it travels as a reminder in a user turn.
            text = content if isinstance(content, str) else system_text(content)
            out.append(
                {"role": "user", "content": f"<system-reminder>\n{text}\n</system-reminder>"}
            )
        elif role == "assistant":
            out.append(_assistant_message(content, keep_reasoning, keep_details))
        else:
            tool_messages, parts = _user_parts(
                content, f"messages.{i}", target.quirks.supports_images
            )
            out.extend(tool_messages)
            if parts:
                out.append({"role": "user", "content": parts})
    return _merge(out)


def thinking_wanted(req: JSON, target: Target) -> bool:
    thinking = req.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    return target.thinking_allowed and kind in ("enabled", "adaptive")


def _effort(req: JSON) -> str:
    config = req.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort in ("low", "medium", "high"):
        return str(effort)
    if effort in ("max", "xhigh"):
        return "high"
    thinking = req.get("thinking") or {}
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if isinstance(budget, int):
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return "medium"


def _apply_thinking(body: JSON, req: JSON, target: Target) -> None:
    control = target.quirks.reasoning_control
    wanted = thinking_wanted(req, target)
    if control == "reasoning_effort":
        if wanted:
            body["reasoning_effort"] = _effort(req)
    elif control == "openrouter":
        body["reasoning"] = {"effort": _effort(req)} if wanted else {"enabled": False}
    elif control == "chat_template_kwargs":
        # Templates differ in the name (Qwen: enable_thinking, DeepSeek/Kimi: thinking);
        # unknown kwargs are ignored by the template, so both are sent.
        body["chat_template_kwargs"] = {"thinking": wanted, "enable_thinking": wanted}


def to_openai(req: JSON, target: Target) -> tuple[JSON, list[str]]:
    warnings: list[str] = []
    body: JSON = {"model": target.model, "messages": convert_messages(req, target), "stream": True}
    if target.quirks.supports_stream_options:
        body["stream_options"] = {"include_usage": True}
    max_tokens = req.get("max_tokens")
    if isinstance(max_tokens, int):
        cap = target.quirks.max_tokens_cap
        body["max_tokens"] = min(max_tokens, cap) if cap else max_tokens
    for name in ("temperature", "top_p"):
        if req.get(name) is not None:
            body[name] = req[name]
    if req.get("top_k") is not None and target.quirks.supports_top_k:
        body["top_k"] = req["top_k"]
    if req.get("stop_sequences"):
        body["stop"] = req["stop_sequences"]
    metadata = req.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        body["user"] = metadata["user_id"][:256]
    tools = convert_tools(req, target, warnings)
    choice = openai_tool_choice(req.get("tool_choice"))
    if tools and choice != "none":
        if isinstance(choice, dict) and not target.quirks.named_tool_choice:
            forced = choice["function"]["name"]
            tools = [t for t in tools if t["function"]["name"] == forced] or tools
            choice = "required"
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
        disable = isinstance(req.get("tool_choice"), dict) and req["tool_choice"].get(
            "disable_parallel_tool_use"
        )
        if disable:
            body["parallel_tool_calls"] = False
    _apply_thinking(body, req, target)
    fmt = response_format(req, target)
    if fmt is not None:
        body["response_format"] = fmt
    return body, warnings
