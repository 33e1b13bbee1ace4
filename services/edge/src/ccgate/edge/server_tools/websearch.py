"""Web search as Anthropic runs it, as pure data: the tool a request carries, the function
offered to the backend instead, the blocks streamed to the client, the next round's request.

Claude Code's WebSearch (2.1.332) sends a side request with the `web_search_20250305` tool,
`max_uses: 8` and `tool_choice` forcing it, then reads the `web_search_tool_result` blocks of
the answer. The backend sees a plain `web_search(query)` function of the same name.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ccgate.edge.translate.stream import Event

TOOL_NAME = "web_search"
MAX_QUERY_CHARS = 400
FUNCTION_DESCRIPTION = (
    "Search the web. Returns result titles, URLs and snippets; cite the URLs you use "
    "as markdown links."
)


@dataclass(frozen=True)
class Hit:
    url: str
    title: str
    snippet: str = ""
    page_age: str | None = None


@dataclass(frozen=True)
class WebSearchSpec:
    name: str
    max_uses: int | None
    allowed_domains: tuple[str, ...]
    blocked_domains: tuple[str, ...]


def find(req: dict[str, Any]) -> WebSearchSpec | None:
    for tool in req.get("tools") or []:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind.startswith("web_search_"):
            uses = tool.get("max_uses")
            return WebSearchSpec(
                str(tool.get("name") or TOOL_NAME),
                uses if isinstance(uses, int) and uses > 0 else None,
                tuple(tool.get("allowed_domains") or ()),
                tuple(tool.get("blocked_domains") or ()),
            )
    return None


def without_tool(req: dict[str, Any]) -> dict[str, Any]:
    """`req` with the web search tool (and a tool_choice forcing it) taken out."""
    tools = [t for t in req.get("tools") or [] if not _is_web_search(t)]
    out = {**req, "tools": tools}
    choice = req.get("tool_choice")
    if not tools or (isinstance(choice, dict) and choice.get("name") == TOOL_NAME):
        out.pop("tool_choice", None)
    if not tools:
        out.pop("tools")
    return out


def offered(req: dict[str, Any], spec: WebSearchSpec) -> dict[str, Any]:
    """`req` with the server tool replaced by a function the backend can call."""
    function = {
        "name": spec.name,
        "description": FUNCTION_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "the search query"}},
            "required": ["query"],
        },
    }
    tools = [function if _is_web_search(t) else t for t in req.get("tools") or []]
    return {**req, "tools": tools}


def _is_web_search(tool: Any) -> bool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    return isinstance(kind, str) and kind.startswith("web_search_")


def allowed(url: str, spec: WebSearchSpec) -> bool:
    host = (urlsplit(url).hostname or "").lower()

    def under(domain: str) -> bool:
        domain = domain.lower().removeprefix("www.").split("/")[0]
        bare = host.removeprefix("www.")
        return bare == domain or bare.endswith("." + domain)

    if spec.allowed_domains and not any(under(d) for d in spec.allowed_domains):
        return False
    return not any(under(d) for d in spec.blocked_domains)


def query_problem(query: Any) -> str | None:
    """Anthropic's error code for a query it would refuse, or None."""
    if not isinstance(query, str) or not query.strip():
        return "invalid_tool_input"
    if len(query) > MAX_QUERY_CHARS:
        return "query_too_long"
    return None


def server_tool_id() -> str:
    return "srvtoolu_" + secrets.token_hex(12)


def block_events(index: int, block: dict[str, Any], delta: dict[str, Any] | None) -> list[Event]:
    out: list[Event] = [
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
    ]
    if delta is not None:
        out.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
    out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


def use_events(index: int, tool_id: str, query: str) -> list[Event]:
    """The `server_tool_use` block, its input streamed as one JSON delta as Anthropic does."""
    import json

    block = {"type": "server_tool_use", "id": tool_id, "name": TOOL_NAME, "input": {}}
    delta = {"type": "input_json_delta", "partial_json": json.dumps({"query": query})}
    return block_events(index, block, delta)


def result_content(hits: list[Hit] | str) -> list[dict[str, Any]] | dict[str, Any]:
    if isinstance(hits, str):
        return {"type": "web_search_tool_result_error", "error_code": hits}
    return [
        {
            "type": "web_search_result",
            "url": h.url,
            "title": h.title,
            # Anthropic's is opaque; ours is the snippet, which the client may send back.
            "encrypted_content": h.snippet,
            "page_age": h.page_age,
        }
        for h in hits
    ]


def result_events(index: int, tool_id: str, hits: list[Hit] | str) -> list[Event]:
    block = {
        "type": "web_search_tool_result",
        "tool_use_id": tool_id,
        "content": result_content(hits),
    }
    return block_events(index, block, None)


def result_text(query: str, hits: list[Hit] | str) -> str:
    """What the backend model reads back as the function's result."""
    if isinstance(hits, str):
        return f"Web search for {query!r} failed ({hits}). Answer without it or say so."
    if not hits:
        return f"Web search for {query!r} found nothing."
    lines = [f"Web search results for {query!r}:"]
    for n, h in enumerate(hits, 1):
        lines.append(f"[{n}] {h.title} — {h.url}" + (f" ({h.page_age})" if h.page_age else ""))
        if h.snippet:
            lines.append(f"    {h.snippet}")
    lines.append("Cite the sources you use as markdown links.")
    return "\n".join(lines)


def next_round(
    req: dict[str, Any],
    texts: list[str],
    call_id: str,
    query: str,
    result: str,
    may_search_again: bool,
) -> dict[str, Any]:
    """The request for the round after a search: the model's turn and the result appended;
    no longer forced to search, and without the tool once its uses are spent."""
    assistant: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts if t]
    assistant.append(
        {"type": "tool_use", "id": call_id, "name": TOOL_NAME, "input": {"query": query}}
    )
    user = [{"type": "tool_result", "tool_use_id": call_id, "content": result}]
    out = {
        **req,
        "messages": [
            *req["messages"],
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": user},
        ],
        "tool_choice": {"type": "auto"},
    }
    if not may_search_again:
        out["tools"] = [t for t in req.get("tools") or [] if t.get("name") != TOOL_NAME]
        out.pop("tool_choice")
        if not out["tools"]:
            out.pop("tools")
    return out
