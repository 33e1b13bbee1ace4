"""`ccgate worker`: the arq worker that runs Claude Code for chat users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import typer

from ccgate.shared.logging import setup_logging
from ccgate.shared.settings import Settings
from ccgate.shared.telemetry import setup_tracing

app = typer.Typer(help="The bot's worker.")


@app.command()
def worker() -> None:
    """Run Claude Code jobs from the Redis queue (any number of workers may run)."""
    from ccgate.bot.jobs import FairWorker, worker_settings

    settings = Settings.from_env()
    setup_logging(settings.log_level, settings.log_json)
    setup_tracing("ccgate-worker")
    try:
        options = worker_settings(settings)
    except RuntimeError as exc:
        typer.echo(f"ccgate worker: {exc}", err=True)
        raise typer.Exit(2) from None
    FairWorker(**options).run()


@app.command()
def bot() -> None:
    """The chat front end(s) named by MESSAGING_PLATFORM: telegram, discord, or both."""
    import asyncio

    from arq import create_pool

    from ccgate.bot import heartbeat
    from ccgate.bot.fronts.core import ConfigurationError
    from ccgate.bot.jobs import redis_settings

    settings = Settings.from_env()
    setup_logging(settings.log_level, settings.log_json)
    setup_tracing("ccgate-bot")
    platforms = settings.messaging_platforms()
    if not platforms or not platforms <= {"telegram", "discord"}:
        typer.echo(
            "ccgate bot: set MESSAGING_PLATFORM to telegram, discord or both "
            f"(it is {settings.messaging_platform!r})",
            err=True,
        )
        raise typer.Exit(2)
    from ccgate.shared.redis import queue_redis_url

    try:
        redis_url = queue_redis_url(settings)  # BOT_REDIS_URL, else REDIS_URL; never a cluster
    except ValueError as exc:
        typer.echo(f"ccgate bot: {exc}", err=True)
        raise typer.Exit(2) from None

    async def main() -> None:
        pool = await create_pool(redis_settings(redis_url))
        runs: list[Callable[[], Awaitable[None]]] = [lambda: heartbeat.keep(pool, "bot")]
        try:
            if "telegram" in platforms:
                from ccgate.bot.fronts.telegram import TelegramFront

                runs.append(TelegramFront(settings, pool).run)
            if "discord" in platforms:
                from ccgate.bot.fronts.discord import DiscordFront

                runs.append(DiscordFront(settings, pool).run)
            await asyncio.gather(*(run() for run in runs))
        finally:
            await pool.aclose()

    try:
        asyncio.run(main())
    except ConfigurationError as exc:
        typer.echo(f"ccgate bot: {exc}", err=True)
        raise typer.Exit(2) from None
