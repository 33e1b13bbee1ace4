"""Quota savers: side requests Claude Code makes that need no model, answered locally.

Each is switchable with the free-claude-code setting of the same purpose:
- ENABLE_NETWORK_PROBE_MOCK — the quota probe (`max_tokens: 1`, "quota"),
- ENABLE_TITLE_GENERATION_SKIP — the session-title request,
- FAST_PREFIX_DETECTION — the bash command-prefix policy check.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import orjson

from ccgate.edge.translate.request import system_text
from ccgate.shared.settings import Settings

_TITLE_HINT = re.compile(r"\btitle \(\d+-\d+ words\)|\b\d+-\d+ word title\b", re.IGNORECASE)
_SESSION = re.compile(r"<session>\s*(.*?)\s*</session>", re.DOTALL)
_COMMAND = re.compile(r"^Command:\s*(.+?)\s*$", re.MULTILINE)
_MULTI_WORD = {
    "git",
    "npm",
    "npx",
    "yarn",
    "pnpm",
    "docker",
    "kubectl",
    "cargo",
    "go",
    "pip",
    "uv",
    "poetry",
    "make",
    "gh",
    "helm",
    "bun",
    "deno",
    "python",
    "python3",
}
_INJECTION = re.compile(r"[;&|`$<>()\n]")


def _user_text(req: dict[str, Any]) -> str:
    messages = req.get("messages") or []
    if len(messages) != 1 or messages[0].get("role") != "user":
        return ""
    content = messages[0].get("content")
    if isinstance(content, str):
        return content
    return "\n".join(
        b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
    )


def _is_title_request(req: dict[str, Any]) -> bool:
    config = req.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    if isinstance(schema, dict) and set((schema.get("properties") or {}).keys()) == {"title"}:
        return True
    return bool(_TITLE_HINT.search(system_text(req.get("system"))))


def title_for(text: str) -> str:
    match = _SESSION.search(text)
    words = (match.group(1) if match else text).split()[:6]
    title = " ".join(words).strip(" .,:;!?") or "New session"
    return title[:1].upper() + title[1:]


def command_prefix(command: str) -> str:
    if _INJECTION.search(command):
        return "command_injection_detected"
    try:
        words = shlex.split(command)
    except ValueError:
        return "command_injection_detected"
    if not words:
        return "none"
    if words[0] in _MULTI_WORD and len(words) > 1 and not words[1].startswith("-"):
        return f"{words[0]} {words[1]}"
    return words[0]


def local_answer(req: dict[str, Any], settings: Settings) -> tuple[str, str] | None:
    """(saver name, answer text) when this request can be answered without a model."""
    text = _user_text(req)
    if (
        settings.enable_network_probe_mock
        and req.get("max_tokens") == 1
        and "quota" in text.lower()
    ):
        return "quota_probe", "Quota check passed."
    if settings.enable_title_generation_skip and text and _is_title_request(req):
        return "title", orjson.dumps({"title": title_for(text)}).decode()
    if settings.fast_prefix_detection and "<policy_spec>" in text:
        commands = _COMMAND.findall(text)
        if commands:
            return "command_prefix", command_prefix(commands[-1])
    return None
