"""Claude Code's permission requests, answered from the chat.

The run's permission prompt tool (approval_server.py, an MCP server the CLI starts) files a
request here and waits; the front end shows it with buttons and files the answer. Everything
lives in Redis, so the MCP server, the worker and any front end replica meet there:

- `ccgate:bot:approval:<id>`           the request (chat, owner, tool, summary, message id)
- `ccgate:bot:approval:<id>:decided`   set once, NX: the first answer wins (a press, /stop,
                                       the timeout), every later one is told it came late
- `ccgate:bot:approval:<id>:answer`    the decision, for the waiting MCP server (BLPOP)
- `ccgate:bot:approvals:<platform>:<chat>`  the chat's waiting requests (for /stop)
- `ccgate:bot:allow:<platform>:<chat>`      "allow for this session" rules; they last as long as
                                            the chat's session (cleared by /new and /project)
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from ccgate.bot import sessions

SERVER_NAME = "ccgate"  # the MCP server (approval_server.py) and its tool
TOOL_NAME = "approve"
PROMPT_TOOL = f"mcp__{SERVER_NAME}__{TOOL_NAME}"  # what --permission-prompt-tool names
ONCE, SESSION, DENY, REASON = "once", "session", "deny", "why"
CHOICES = (ONCE, SESSION, DENY, REASON)
_SHELL_CONTROL = re.compile(r"[;&|`<>\n]|\$\(")
SUMMARY_LIMIT = 1200


def _key(approval_id: str, part: str = "") -> str:
    return f"ccgate:bot:approval:{approval_id}" + (f":{part}" if part else "")


def pending_key(platform: str, chat_id: str) -> str:
    return f"ccgate:bot:approvals:{platform}:{chat_id}"


def rules_key(platform: str, chat_id: str) -> str:
    return f"ccgate:bot:allow:{platform}:{chat_id}"


def reason_key(platform: str, chat_id: str, user_id: str) -> str:
    return f"ccgate:bot:reason:{platform}:{chat_id}:{user_id}"


# -- what is asked ---------------------------------------------------------------------------
def session_rule(tool: str, tool_input: dict[str, Any]) -> str | None:
    """What "allow for this session" allows: the tool, or for Bash the command's first word.
    A compound shell command (`;`, `&&`, pipes, redirections, `$(…)`) gets no session rule:
    its first word says nothing about the rest."""
    if tool != "Bash":
        return f"tool:{tool}"
    command = str(tool_input.get("command", "")).strip()
    if not command or _SHELL_CONTROL.search(command):
        return None
    return "bash:" + command.split()[0]


def rule_label(rule: str) -> str:
    kind, _, value = rule.partition(":")
    return f"`{value}` commands" if kind == "bash" else value


def _clip(text: str, limit: int = SUMMARY_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(tool: str, tool_input: dict[str, Any]) -> str:
    """A readable account of what the tool is about to do (Markdown)."""
    path = str(tool_input.get("file_path") or tool_input.get("notebook_path") or "")
    if tool == "Bash":
        return f"```\n$ {_clip(str(tool_input.get('command', '')))}\n```"
    if tool in ("Edit", "Write", "MultiEdit"):
        edits = tool_input.get("edits") or [tool_input]
        lines: list[str] = []
        for edit in edits if isinstance(edits, list) else []:
            old = str(edit.get("old_string", "")).splitlines()
            new = str(edit.get("new_string", edit.get("content", ""))).splitlines()
            lines += list(difflib.unified_diff(old, new, lineterm="", n=1))[2:]
        return f"{path}\n```diff\n{_clip(chr(10).join(lines))}\n```"
    shown = orjson.dumps(tool_input, option=orjson.OPT_INDENT_2).decode()
    return f"```\n{_clip(shown)}\n```"


@dataclass(frozen=True)
class Request:
    id: str
    platform: str
    chat_id: str
    owner: str
    job: str
    tool: str
    summary: str
    rule: str  # "" when no session rule is offered
    message_id: str = ""

    def text(self) -> str:
        return f"🔐 Claude Code wants to use {self.tool}:\n{self.summary}"

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) — data stays well under Telegram's 64 bytes."""
        labels = {
            ONCE: "✅ Allow once",
            SESSION: f"♾️ Allow {rule_label(self.rule)} for this session",
            DENY: "🚫 Deny",
            REASON: "✍️ Deny with reason…",
        }
        return [(labels[c], f"ap:{self.id}:{c}") for c in CHOICES if c != SESSION or self.rule]


def parse_press(data: str) -> tuple[str, str] | None:
    """(approval id, choice) from a button's data."""
    kind, _, rest = data.partition(":")
    approval_id, _, choice = rest.partition(":")
    return (approval_id, choice) if kind == "ap" and choice in CHOICES else None


# -- the MCP server's side -------------------------------------------------------------------
async def allowed_by_rule(redis: Any, platform: str, chat_id: str, rule: str | None) -> bool:
    return bool(rule) and bool(await redis.sismember(rules_key(platform, chat_id), rule))


async def _post(redis: Any, request: Request, kind: str, text: str) -> None:
    """A line about the request for its chat, tagged with the request's id."""
    await sessions.post(
        redis, request.platform, request.chat_id, kind, text, request.job, approval=request.id
    )


async def file_request(redis: Any, request: Request, ttl: int) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(_key(request.id), mapping=asdict(request))
        pipe.expire(_key(request.id), ttl)
        pipe.sadd(pending_key(request.platform, request.chat_id), request.id)
        pipe.expire(pending_key(request.platform, request.chat_id), ttl)
        await pipe.execute()
    await _post(redis, request, "approval", request.text())


async def wait_answer(redis: Any, request: Request, wait_s: float) -> dict[str, Any]:
    """The decision; on timeout, a denial — unless an answer won the race just then."""
    got = await redis.blpop([_key(request.id, "answer")], timeout=max(1, round(wait_s)))
    if got is None:
        minutes = wait_s / 60
        if await settle(redis, request, {"behavior": "deny", "by": "timeout"}):
            message = (
                f"No answer in the chat within {minutes:g} min (BOT_APPROVAL_TIMEOUT): denied."
            )
            closed = f"⏱️ {request.tool}: no answer within {minutes:g} min — denied."
            await _post(redis, request, "approval_closed", closed)
            return {"behavior": "deny", "message": message}
        got = await redis.blpop([_key(request.id, "answer")], timeout=5)
    return dict(orjson.loads(got[1])) if got else {"behavior": "deny", "message": "no answer"}


# -- the front end's side --------------------------------------------------------------------
async def load(redis: Any, approval_id: str) -> Request | None:
    raw = await redis.hgetall(_key(approval_id))
    if not raw:
        return None
    return Request(**{k.decode(): v.decode() for k, v in raw.items()})


async def note_message(redis: Any, approval_id: str, message_id: str) -> None:
    await redis.hset(_key(approval_id), "message_id", message_id)


async def settle(redis: Any, request: Request, decision: dict[str, Any]) -> bool:
    """File `decision` if nothing was decided yet; False when another answer came first."""
    if not await redis.set(_key(request.id, "decided"), decision.get("by", "?"), nx=True, ex=3600):
        return False
    async with redis.pipeline(transaction=True) as pipe:
        if decision.get("rule"):
            pipe.sadd(rules_key(request.platform, request.chat_id), decision["rule"])
        pipe.rpush(_key(request.id, "answer"), orjson.dumps(decision))
        pipe.expire(_key(request.id, "answer"), 3600)
        pipe.srem(pending_key(request.platform, request.chat_id), request.id)
        await pipe.execute()
    return True


def decision(request: Request, choice: str, by: str, reason: str = "") -> dict[str, Any]:
    if choice in (ONCE, SESSION):
        rule = request.rule if choice == SESSION else ""
        return {"behavior": "allow", "by": by, "rule": rule}
    message = "The user denied this in the chat" + (f": {reason}" if reason else ".")
    return {"behavior": "deny", "by": by, "message": message}


def outcome_line(request: Request, choice: str, reason: str = "") -> str:
    what = {
        ONCE: "✅ allowed once",
        SESSION: f"♾️ {rule_label(request.rule)} allowed for this session",
        DENY: "🚫 denied",
        REASON: "🚫 denied",
    }[choice]
    return f"{request.tool}: {what}" + (f" — “{reason}”" if reason else "")


async def waiting_in_chat(redis: Any, platform: str, chat_id: str) -> list[Request]:
    found = []
    for raw in await redis.smembers(pending_key(platform, chat_id)):
        request = await load(redis, raw.decode())
        if request is None:
            await redis.srem(pending_key(platform, chat_id), raw)
        else:
            found.append(request)
    return found


async def forget_session_rules(redis: Any, platform: str, chat_id: str) -> None:
    await redis.delete(rules_key(platform, chat_id))
