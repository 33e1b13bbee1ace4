"""What the front end asks of the edge (over HTTP, as Claude Code does): the providers' quota
for /status, and the person's usage for /usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from ccgate.shared.settings import Settings


async def edge_get(settings: Settings, path: str, params: dict[str, str] | None = None) -> Any:
    """The edge's JSON answer; a str saying what went wrong otherwise."""
    key = settings.ccgate_bot_api_key
    headers = {"x-api-key": key.get_secret_value()} if key else {}
    try:
        async with httpx.AsyncClient(timeout=3, trust_env=False) as http:
            response = await http.get(
                settings.ccgate_edge_url.rstrip("/") + path, headers=headers, params=params
            )
        if response.status_code != 200:
            # e.g. 404 when the edge serves /ccgate/* on its CCGATE_ADMIN_PORT only
            return f"the edge answered {response.status_code} at {response.url.path}"
        return response.json()
    except (httpx.HTTPError, ValueError):
        return "the edge did not answer"


async def limiter_line(settings: Settings) -> str:
    answer = await edge_get(settings, "/ccgate/limiter")
    if not isinstance(answer, dict):
        return f"limiter: {answer}"
    providers: dict[str, Any] = answer.get("providers", {})
    parts = [
        f"{name} {p.get('in_flight', 0)} running, {p.get('queued', 0)} queued"
        for name, p in sorted(providers.items())
    ]
    return "limiter: " + ("; ".join(parts) if parts else "idle")


def _total(rows: list[dict[str, Any]]) -> str:
    requests = sum(int(r.get("requests", 0)) for r in rows)
    tokens_in = sum(int(r.get("input_tokens", 0)) for r in rows)
    tokens_out = sum(int(r.get("output_tokens", 0)) for r in rows)
    return f"{requests} requests, {tokens_in:,} in / {tokens_out:,} out tokens"


async def usage_text(settings: Settings, chat_user: str) -> str:
    """`chat_user` ("telegram:42") today and this month (UTC), as the edge recorded it: under
    the bot key's bucket for that chat user, or under `chat/<user>` when the edge has no keys."""
    now = datetime.now(UTC)
    answer = await edge_get(settings, "/ccgate/usage", {"since": now.strftime("%Y-%m-01")})
    if not isinstance(answer, dict):
        return f"Usage is not available: {answer}."
    rows = [
        r
        for r in answer.get("rows", [])
        if r.get("chat_user") == chat_user or r.get("key") == f"chat/{chat_user}"
    ]
    today = [r for r in rows if r.get("day") == now.strftime("%Y-%m-%d")]
    note = "" if answer.get("persistent") else "\n(the edge keeps usage in memory: since its start)"
    return f"Your usage — today: {_total(today)}; this month: {_total(rows)}.{note}"
