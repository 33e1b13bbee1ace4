"""`ccgate worker`: the arq worker that runs Claude Code for chat users."""

from __future__ import annotations

import typer

from ccgate.shared.logging import setup_logging
from ccgate.shared.settings import Settings
from ccgate.shared.telemetry import setup_tracing

app = typer.Typer(help="The bot's worker.")


@app.command()
def worker() -> None:
    """Run Claude Code jobs from the Redis queue (any number of workers may run)."""
    from arq.worker import run_worker

    from ccgate.bot.jobs import worker_settings

    settings = Settings()
    setup_logging(settings.log_level, settings.log_json)
    setup_tracing("ccgate-worker")
    try:
        options = worker_settings(settings)
    except RuntimeError as exc:
        typer.echo(f"ccgate worker: {exc}", err=True)
        raise typer.Exit(2) from None
    run_worker(options)


@app.command()
def bot() -> None:
    """The chat front end(s) named by MESSAGING_PLATFORM (telegram; discord is not built yet)."""
    import asyncio

    from arq import create_pool
    from arq.connections import RedisSettings

    from ccgate.bot.fronts.telegram import ConfigurationError, TelegramFront
    from ccgate.bot.jobs import QUEUE

    settings = Settings()
    setup_logging(settings.log_level, settings.log_json)
    setup_tracing("ccgate-bot")
    platforms = {
        p.strip()
        for p in settings.messaging_platform.lower().replace("both", "telegram,discord").split(",")
    }
    if not settings.redis_url:
        typer.echo("ccgate bot: set REDIS_URL (jobs and sessions live in Redis)", err=True)
        raise typer.Exit(2)
    if "discord" in platforms:
        typer.echo(
            "ccgate bot: the Discord front end is not built yet; use MESSAGING_PLATFORM=telegram",
            err=True,
        )
        raise typer.Exit(2)
    if "telegram" not in platforms:
        typer.echo("ccgate bot: set MESSAGING_PLATFORM=telegram", err=True)
        raise typer.Exit(2)

    async def main() -> None:
        pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
        try:
            await TelegramFront(settings, pool, QUEUE).run()
        finally:
            await pool.aclose()

    try:
        asyncio.run(main())
    except ConfigurationError as exc:
        typer.echo(f"ccgate bot: {exc}", err=True)
        raise typer.Exit(2) from None
