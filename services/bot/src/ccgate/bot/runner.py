"""Runs one Claude Code turn: `claude -p … --output-format stream-json --verbose`, in the
user's workspace, pointed at the edge, in a process group of its own that is killed whole on
cancel or timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ccgate.bot.streamjson import Finished, Item, Started, parse_line
from ccgate.shared.settings import Settings

KILL_GRACE = 3.0


@dataclass
class RunResult:
    session_id: str | None = None
    text: str = ""
    is_error: bool = False
    denied: tuple[str, ...] = ()
    returncode: int | None = None
    stderr: str = ""
    items: list[Item] = field(default_factory=list)


def claude_binary(settings: Settings) -> str:
    binary = settings.claude_bin or shutil.which("claude")
    if not binary:
        raise RuntimeError("no `claude` binary: install Claude Code or set CLAUDE_BIN")
    return binary


def command(
    settings: Settings, prompt: str, session_id: str | None, model: str | None
) -> list[str]:
    argv = [claude_binary(settings), "-p", prompt, "--output-format", "stream-json", "--verbose"]
    if session_id:
        argv += ["--resume", session_id]
    if model:
        argv += ["--model", model]
    if settings.bot_skip_permissions:
        argv.append("--dangerously-skip-permissions")
    else:
        argv += ["--permission-mode", settings.bot_permission_mode]
        if settings.bot_allowed_tools:
            argv += ["--allowedTools", settings.bot_allowed_tools]
    return argv


def environment(
    settings: Settings, home: Path, user_label: str, traceparent: str | None
) -> dict[str, str]:
    """Only what the CLI needs: never the bot's own tokens."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "TERM")}
    key = (
        settings.ccgate_bot_api_key.get_secret_value()
        if settings.ccgate_bot_api_key
        else "ccgate-bot"
    )
    headers = [f"x-ccgate-chat-user: {user_label}"]
    if traceparent:
        headers.append(f"traceparent: {traceparent}")
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=settings.ccgate_edge_url,
        ANTHROPIC_API_KEY=key,
        ANTHROPIC_CUSTOM_HEADERS="\n".join(headers),
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_ERROR_REPORTING="1",
    )
    return env


def descendants(pid: int) -> list[int]:
    """Every process below `pid`. Claude Code starts each Bash tool in a process group of its
    own, so killing the CLI's group alone would leave the tools running."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_group(pid: int) -> None:
    """Kill the CLI, its process group, and every tool process it started (their groups too)."""
    own_group = os.getpgrp()
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(target)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


async def run_turn(
    settings: Settings,
    prompt: str,
    cwd: Path,
    home: Path,
    *,
    session_id: str | None,
    model: str | None,
    user_label: str,
    on_item: Callable[[Item], Awaitable[None]],
    traceparent: str | None = None,
) -> RunResult:
    process = await asyncio.create_subprocess_exec(
        *command(settings, prompt, session_id, model),
        cwd=cwd,
        env=environment(settings, home, user_label, traceparent),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: killed whole
        limit=16 * 1024 * 1024,
    )
    result = RunResult()
    try:
        async with asyncio.timeout(settings.bot_job_timeout):
            assert process.stdout is not None and process.stderr is not None
            stderr_task = asyncio.create_task(process.stderr.read())
            async for line in process.stdout:
                for item in parse_line(line):
                    result.items.append(item)
                    if isinstance(item, Started):
                        result.session_id = item.session_id
                    elif isinstance(item, Finished):
                        result.session_id = item.session_id or result.session_id
                        result.text, result.is_error, result.denied = (
                            item.text,
                            item.is_error,
                            item.denied,
                        )
                    await on_item(item)
            result.returncode = await process.wait()
            result.stderr = (await stderr_task).decode(errors="replace")[-2000:]
    except BaseException:
        # Cancelled (/stop), timed out, or the worker is going down: the whole group goes.
        kill_group(process.pid)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), KILL_GRACE)
        raise
    finally:
        kill_group(process.pid)  # children the CLI left behind (tool subprocesses)
    return result
