"""The permission prompt tool of a bot run: a stdio MCP server (the official `mcp` SDK) that
the worker hands to Claude Code with `--mcp-config`, one per run. Claude Code calls its
`approve` tool before a tool that needs permission; the request goes to the chat through
Redis (approvals.py) and the answer comes back the same way.

What the pinned CLI (2.1.332) sends and expects, found by experiment: the arguments are
`{"tool_name", "input", "tool_use_id"}`; the result must be a single text block holding JSON,
`{"behavior": "allow", "updatedInput": {...}}` or `{"behavior": "deny", "message": "..."}` —
a structured result (the SDK's default for a typed return) is refused as invalid.

Run as `python -m ccgate.bot.approval_server CONFIG`, CONFIG a JSON file the worker wrote:
the Redis URL, the run's chat, owner and job, and BOT_APPROVAL_TIMEOUT.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

import orjson
from mcp.server.mcpserver import MCPServer

from ccgate.bot import approvals
from ccgate.shared.redis import connect


def build(config: dict[str, Any]) -> MCPServer:
    server = MCPServer(approvals.SERVER_NAME)
    redis = connect(config["redis_url"], blocking=True)
    platform, chat_id = config["platform"], config["chat_id"]
    timeout = float(config["timeout"])

    @server.tool(name=approvals.TOOL_NAME, structured_output=False)
    async def approve(tool_name: str, input: dict[str, Any], tool_use_id: str = "") -> str:
        """Ask the person in the chat whether Claude Code may run this tool."""
        rule = approvals.session_rule(tool_name, input)
        if await approvals.allowed_by_rule(redis, platform, chat_id, rule):
            return orjson.dumps({"behavior": "allow", "updatedInput": input}).decode()
        request = approvals.Request(
            id=secrets.token_hex(8),
            platform=platform,
            chat_id=chat_id,
            owner=config["owner"],
            job=config["job"],
            tool=tool_name,
            summary=approvals.summary(tool_name, input),
            rule=rule or "",
        )
        await approvals.file_request(redis, request, ttl=int(timeout) + 3600)
        decision = await approvals.wait_answer(redis, request, timeout)
        if decision.get("behavior") == "allow":
            return orjson.dumps({"behavior": "allow", "updatedInput": input}).decode()
        answer = {"behavior": "deny", "message": decision.get("message", "denied")}
        return orjson.dumps(answer).decode()

    return server


def main() -> None:
    config = orjson.loads(Path(sys.argv[1]).read_bytes())
    build(config).run("stdio")


if __name__ == "__main__":
    main()
