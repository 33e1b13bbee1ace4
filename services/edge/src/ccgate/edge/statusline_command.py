"""`ccgate statusline`: the command for Claude Code's `statusLine` setting. Claude Code runs it
after each message with the session's JSON on stdin (session_id, model.id, workspace, cost,
context_window, …) and shows its first line of output. This asks the edge which backend the
session's model routes to, that provider's quota state and the caller's tokens today."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from ccgate.shared.settings import Settings

TIMEOUT = 2.0  # Claude Code refreshes the line at most every 300 ms; never hang it


def edge_and_headers() -> tuple[str, dict[str, str]]:
    """Where this Claude Code sends its requests, with the key it sends them with."""
    settings = Settings.from_env()
    url = os.environ.get("ANTHROPIC_BASE_URL") or settings.ccgate_edge_url
    if key := os.environ.get("ANTHROPIC_API_KEY"):
        return url, {"x-api-key": key}
    if token := os.environ.get("ANTHROPIC_AUTH_TOKEN"):
        return url, {"authorization": f"Bearer {token}"}
    keys = settings.api_keys()
    return url, ({"x-api-key": next(iter(keys.values()))} if keys else {})


def compact(number: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if number >= size:
            return f"{number / size:.1f}{suffix}"
    return str(number)


def quota_text(quota: dict[str, Any]) -> str:
    state = quota.get("state")
    if state == "paused":
        return f"quota paused {quota.get('paused_for', 0):.0f}s"
    if state == "queueing":
        return f"{quota.get('queued')} queued"
    if state == "idle":
        return "quota unused"
    text = f"{quota.get('in_flight')}/{quota.get('max_concurrency') or '∞'} in flight"
    if quota.get("rate_limit"):
        text += f", {quota.get('tokens_left')}/{quota.get('rate_limit')} left"
    return text


def line(view: dict[str, Any]) -> str:
    parts = [f"ccgate → {view.get('backend') or 'no route'}", quota_text(view.get("quota") or {})]
    if view.get("tokens_today") is not None:
        parts.append(f"{compact(int(view['tokens_today']))} tokens today")
    return " · ".join(parts)


def read_session(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def statusline_command() -> str:
    return f"{shlex.quote(sys.executable)} -m ccgate.cli statusline"


def install_statusline(settings_file: Path, command: str, force: bool = False) -> str:
    """Put `command` into Claude Code's settings as its status line; says what it did."""
    current: dict[str, Any] = {}
    if settings_file.exists():
        current = json.loads(settings_file.read_text() or "{}")
    existing = current.get("statusLine") or {}
    if existing.get("command") == command:
        return f"status line already installed in {settings_file}"
    if existing and not force:
        return f"{settings_file} has its own statusLine; left as it is (--force replaces it)"
    current["statusLine"] = {"type": "command", "command": command, "padding": 0}
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = settings_file.with_suffix(".ccgate-tmp")
    temporary.write_text(json.dumps(current, indent=2) + "\n")
    temporary.replace(settings_file)
    return f"status line installed in {settings_file}"


def claude_settings_file() -> Path:
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(config) / "settings.json" if config else Path.home() / ".claude" / "settings.json"


def statusline(
    install: Annotated[
        bool, typer.Option("--install", help="Add it to ~/.claude/settings.json instead.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="With --install: replace another status line.")
    ] = False,
) -> None:
    """One status line for Claude Code: backend model, quota state, your tokens today."""
    if install:
        typer.echo(install_statusline(claude_settings_file(), statusline_command(), force))
        return
    session = read_session(sys.stdin.read() if not sys.stdin.isatty() else "")
    model = (session.get("model") or {}).get("id") or ""
    url, headers = edge_and_headers()
    try:
        response = httpx.get(
            url.rstrip("/") + "/v1/ccgate/statusline",
            params={"model": model, "session": str(session.get("session_id") or "")},
            headers=headers,
            timeout=TIMEOUT,
            trust_env=False,
        )
        response.raise_for_status()
        typer.echo(line(response.json()))
    except (httpx.HTTPError, ValueError) as exc:
        reason = (
            f"{exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else "no answer"
        )
        typer.echo(f"ccgate: edge at {url}: {reason}")
