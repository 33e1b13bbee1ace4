"""`ccgate serve`, `ccgate code`, `ccgate doctor`, `ccgate limiter status`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from typing import Annotated, Any

import orjson
import typer

from ccgate.edge import llamacpp, side_http
from ccgate.edge.keys import KeyStore, has_keys, new_record, open_store
from ccgate.edge.probe import probe_all
from ccgate.edge.routing import Router, RoutingError
from ccgate.edge.security import security_findings
from ccgate.edge.server import check_redis_settings, startup_report
from ccgate.shared.settings import Settings

app = typer.Typer(help="The edge: the Anthropic-compatible gateway.")
limiter_app = typer.Typer(help="Inspect the shared limiter.")
keys_app = typer.Typer(help="Team keys: create, list, rotate, revoke.")


def key_store() -> KeyStore:
    settings = Settings.from_env()
    return open_store(settings.redis_url, settings.redis_mode)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def serve(ctx: typer.Context) -> None:
    """Run the gateway (`ccgate serve --help` for its options)."""
    from ccgate.edge.run import main as run  # what `ccgate serve` reaches without typer

    run(ctx.args)


def claude_binary(settings: Settings) -> str | None:
    return settings.claude_bin or shutil.which("claude")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def code(
    ctx: typer.Context,
    install_statusline: Annotated[
        bool,
        typer.Option(
            "--install-statusline",
            help="First put `ccgate statusline` into Claude Code's settings.",
        ),
    ] = False,
) -> None:
    """Run `claude` pointed at this gateway (arguments are passed on)."""
    if install_statusline:
        from ccgate.edge import statusline_command as sl

        typer.echo(sl.install_statusline(sl.claude_settings_file(), sl.statusline_command()))
    settings = Settings.from_env()
    binary = claude_binary(settings)
    if binary is None:
        typer.echo("ccgate: no `claude` on PATH; install it or set CLAUDE_BIN", err=True)
        raise typer.Exit(2)
    env = dict(os.environ)
    env["ANTHROPIC_BASE_URL"] = settings.ccgate_edge_url
    keys = settings.api_keys()
    if "ANTHROPIC_API_KEY" not in env and "ANTHROPIC_AUTH_TOKEN" not in env:
        env["ANTHROPIC_API_KEY"] = next(iter(keys.values()), "ccgate-local")
    raise typer.Exit(subprocess.call([binary, *ctx.args], env=env))


@app.command()
def doctor(
    host: Annotated[
        str, typer.Option(help="The address you serve (or will serve) the gateway on.")
    ] = "127.0.0.1",
) -> None:
    """Check the configuration, its safety, each routed provider, Redis and the claude binary."""
    problems = 0

    def say(ok: bool, text: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        typer.echo(f"  [{'ok' if ok else 'FIX'}] {text}")

    try:
        settings = Settings.from_env()
        Router(settings)
        check_redis_settings(settings)
    except (RoutingError, ValueError) as exc:
        say(False, f"configuration: {exc}")
        raise typer.Exit(1) from None
    say(True, "configuration parses")
    for line in startup_report(settings):
        typer.echo(line)
    for fine, text in security_findings(settings, host, has_keys(settings)):
        say(fine, text)
    for result in asyncio.run(probe_all(settings, seconds=5.0)):
        say(result.reachable, result.text)
    for fine, text in llamacpp.findings(settings):
        say(fine, text)
    if settings.redis_url:
        try:
            from ccgate.shared.redis import connect_sync

            connect_sync(settings.redis_url, mode=settings.redis_mode, timeout=3).ping()
            say(True, f"redis answers ({settings.redis_mode})")
        except Exception as exc:
            say(False, f"redis: {type(exc).__name__}; check REDIS_URL")
    binary = claude_binary(settings)
    say(
        binary is not None, f"claude binary: {binary or 'not found (set CLAUDE_BIN or install it)'}"
    )
    raise typer.Exit(1 if problems else 0)


def edge_get(path: str, params: dict[str, str]) -> Any:
    """GET an operational route of the running edge (CCGATE_EDGE_URL), with a team key if set."""
    settings = Settings.from_env()
    keys = settings.api_keys()
    headers = {"x-api-key": next(iter(keys.values()))} if keys else {}
    url = settings.ccgate_edge_url.rstrip("/") + path
    try:
        answer = side_http.call_sync("GET", url, params=params, headers=headers, seconds=10.0)
    except side_http.CallFailed as exc:
        typer.echo(f"ccgate: cannot read {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    if answer.status != 200:
        typer.echo(f"ccgate: cannot read {url}: it answered {answer.status}", err=True)
        raise typer.Exit(1)
    return answer.json()


@limiter_app.command("status")
def limiter_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Live limiter state, from the running edge."""
    data = edge_get("/ccgate/limiter", {})
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    typer.echo(f"limiter: {data.get('backend')}")
    for provider, state in data.get("providers", {}).items():
        typer.echo(
            f"  {provider}: tokens left {state.get('tokens_left')}, in flight {state.get('in_flight')}"
            f"/{state.get('max_concurrency')}, queued {sum(state.get('queue_depth', {}).values())}, "
            f"paused {state.get('paused_for', 0):.1f}s, today {state.get('daily_count')}"
        )


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for (shown in usage and traces).")],
    rpm: Annotated[int, typer.Option(help="Own requests per minute (0: none).")] = 0,
    max_concurrency: Annotated[int, typer.Option(help="Own in-flight cap (0: none).")] = 0,
    daily_tokens: Annotated[int, typer.Option(help="Tokens per UTC day (0: none).")] = 0,
    models: Annotated[str, typer.Option(help="Allowed models, glob patterns, comma list.")] = "*",
    chat_users: Annotated[
        bool,
        typer.Option(help="A bot's key: each chat user is a bucket (limits, queue, usage)."),
    ] = False,
) -> None:
    """Create a key. It is printed once and stored only as a hash."""
    settings = Settings.from_env()
    store = open_store(settings.redis_url, settings.redis_mode)
    if any(r.name == name for r in store.load()):
        typer.echo(f"ccgate: a key named {name!r} exists; revoke it first", err=True)
        raise typer.Exit(2)
    try:
        key, record = new_record(
            name,
            rpm=rpm,
            max_concurrency=max_concurrency,
            daily_tokens=daily_tokens,
            models=models,
            chat_users=chat_users,
        )
    except ValueError as exc:
        typer.echo(f"ccgate: {exc}", err=True)
        raise typer.Exit(2) from None
    store.save(record)
    typer.echo(key)
    typer.echo(f"(shown once; stored as a hash for {name!r})", err=True)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The keys and their limits (never the keys themselves)."""
    records = key_store().load()
    rows = [{k: v for k, v in asdict(r).items() if k != "digest"} for r in records]
    if as_json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    for row in rows:
        typer.echo(
            f"{row['name']:<20} rpm={row['rpm'] or '-'} concurrency={row['max_concurrency'] or '-'} "
            f"daily_tokens={row['daily_tokens'] or '-'} models={row['models']} created={row['created']}"
        )


@keys_app.command("rotate")
def keys_rotate(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """A new key for NAME with the same limits and models; the old one stops working.

    For a leaked key: replaced within seconds, nothing to re-type; usage stays with NAME."""
    store = key_store()
    old = next((r for r in store.load() if r.name == name), None)
    if old is None:
        typer.echo(f"ccgate: no key named {name!r}", err=True)
        raise typer.Exit(1)
    key, record = new_record(
        name,
        rpm=old.rpm,
        max_concurrency=old.max_concurrency,
        daily_tokens=old.daily_tokens,
        models=old.models,
        chat_users=old.chat_users,
    )
    store.save(record)  # replaces the record, and with it the old key's hash
    typer.echo(key)
    typer.echo(f"(shown once; the previous key of {name!r} no longer works)", err=True)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key; the edges stop accepting it within a few seconds."""
    if not key_store().delete(name):
        typer.echo(f"ccgate: no key named {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {name!r}")


@app.command()
def usage(
    key: Annotated[str | None, typer.Option(help="Only this key.")] = None,
    since: Annotated[
        str | None, typer.Option(help="First UTC day, YYYY-MM-DD (default today).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    by: Annotated[
        str | None, typer.Option(help="chat-user: totals per chat user of a bot's key.")
    ] = None,
) -> None:
    """Requests, tokens, errors and time queued per key, provider, model and day."""
    if by not in (None, "chat-user"):
        typer.echo("ccgate: --by takes chat-user", err=True)
        raise typer.Exit(2)
    params = {k: v for k, v in (("key", key), ("since", since)) if v}
    data = edge_get("/ccgate/usage", params)
    if by:
        data["rows"] = usage_by_chat_user(data["rows"])
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not data["persistent"]:
        typer.echo("(in-memory usage: it resets when the edge restarts; set REDIS_URL to keep it)")
    for row in data["rows"]:
        where = f"{row['provider']}/{row['model']}" if not by else f"chat user {row['chat_user']}"
        typer.echo(
            f"{row['day']} {row['key']:<20} {where}: {row['requests']} requests, "
            f"{row['input_tokens']} in / {row['output_tokens']} out tokens, {row['errors']} errors, "
            f"{row['queued_seconds']:.1f}s queued"
        )


def usage_by_chat_user(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows summed per key and chat user over the days asked (`day` is the first one)."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["day"]):
        total = totals.setdefault(
            (row["key"], row.get("chat_user", "")),
            {"day": row["day"], "key": row["key"], "chat_user": row.get("chat_user", "")}
            | dict.fromkeys(("requests", "input_tokens", "output_tokens", "errors"), 0)
            | {"queued_seconds": 0.0},
        )
        for metric in ("requests", "input_tokens", "output_tokens", "errors", "queued_seconds"):
            total[metric] += row[metric]
    return sorted(totals.values(), key=lambda t: (t["key"], t["chat_user"]))
