"""Runs one Claude Code turn: `claude -p … --output-format stream-json --verbose`, in the
user's workspace, pointed at the edge, under a guard (see guard.py) in a process group of its
own; the whole tree is killed on cancel, timeout, or the worker's death."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from ccgate.bot.approvals import PROMPT_TOOL, SERVER_NAME
from ccgate.bot.guard import kill_tree
from ccgate.bot.streamjson import Finished, Item, Started, parse_line
from ccgate.shared.settings import Settings

KILL_GRACE = 3.0
ASK = "ask"  # BOT_PERMISSION_MODE: what is not allowed up front is asked in the chat


@dataclass
class RunResult:
    session_id: str | None = None
    text: str = ""
    is_error: bool = False
    denied: tuple[str, ...] = ()
    returncode: int | None = None
    stderr: str = ""


def claude_binary(settings: Settings) -> str:
    binary = settings.claude_bin or shutil.which("claude")
    if not binary:
        raise RuntimeError("no `claude` binary: install Claude Code or set CLAUDE_BIN")
    return binary


def asks_the_chat(settings: Settings) -> bool:
    return not settings.bot_skip_permissions and settings.bot_permission_mode == ASK


def command(
    settings: Settings,
    prompt: str,
    session_id: str | None,
    model: str | None,
    approval_config: Path | None = None,
) -> list[str]:
    argv = [claude_binary(settings), "-p", prompt, "--output-format", "stream-json", "--verbose"]
    if session_id:
        argv += ["--resume", session_id]
    if model:
        argv += ["--model", model]
    if settings.bot_skip_permissions:
        argv.append("--dangerously-skip-permissions")
        return argv
    if approval_config is not None:
        # Ask mode: what the allowlist does not cover is asked in the chat (approval_server).
        argv += ["--permission-mode", "default", "--permission-prompt-tool", PROMPT_TOOL]
        argv += ["--mcp-config", str(approval_config), "--strict-mcp-config"]
    else:
        argv += ["--permission-mode", settings.bot_permission_mode]
    if settings.bot_allowed_tools:
        argv += ["--allowedTools", settings.bot_allowed_tools]
    return argv


@contextlib.contextmanager
def approval_config(settings: Settings, chat: dict[str, str] | None) -> Iterator[Path | None]:
    """The MCP config naming this run's approval server, in a private directory that goes
    when the run ends (it holds the Redis URL, so not in the workspace, not on argv)."""
    if chat is None or not asks_the_chat(settings):
        yield None
        return
    if not settings.redis_url:
        raise RuntimeError("BOT_PERMISSION_MODE=ask needs REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="ccgate-approval-") as private:
        server_config = Path(private) / "server.json"
        server_config.write_bytes(
            orjson.dumps(
                {**chat, "redis_url": settings.redis_url, "timeout": settings.bot_approval_timeout}
            )
        )
        mcp_config = Path(private) / "mcp.json"
        server = {
            "command": sys.executable,
            "args": ["-m", "ccgate.bot.approval_server", str(server_config)],
            # the CLI's own per-call limit (ms), above the chat's wait
            "timeout": int((settings.bot_approval_timeout + 120) * 1000),
        }
        mcp_config.write_bytes(orjson.dumps({"mcpServers": {SERVER_NAME: server}}))
        yield mcp_config


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
    chat: dict[str, str] | None = None,
) -> RunResult:
    """`chat` (platform, chat_id, owner, job) is where permission requests are asked, in ask
    mode."""
    with approval_config(settings, chat) as config:
        return await _run(
            settings,
            command(settings, prompt, session_id, model, config),
            cwd,
            environment(settings, home, user_label, traceparent),
            on_item,
        )


async def _run(
    settings: Settings,
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    on_item: Callable[[Item], Awaitable[None]],
) -> RunResult:
    # Through the guard: if this worker dies, even by SIGKILL, the CLI and its tools die too.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccgate.bot.guard",
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE,  # held open for the run; closing it tells the guard to end
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
        # Cancelled (/stop), timed out, or the worker is going down: the whole tree goes.
        kill_tree(process.pid)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), KILL_GRACE)
        raise
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the guard clears what the CLI left behind, then exits
        if process.returncode is None:  # (a pid already waited for may belong to another)
            kill_tree(process.pid)
    return result
