"""Wires each service's typer commands into one `ccgate`."""

from __future__ import annotations

import typer

from ccgate.bot.cli import app as bot_app
from ccgate.edge.cli import app as edge_app
from ccgate.edge.cli import keys_app, limiter_app
from ccgate.edge.statusline_command import statusline

app = typer.Typer(
    help="ccgate: Claude Code on any backend, one shared quota.", no_args_is_help=True
)
app.registered_commands.extend(edge_app.registered_commands)
app.registered_commands.extend(bot_app.registered_commands)
app.command("statusline")(statusline)
app.add_typer(limiter_app, name="limiter")
app.add_typer(keys_app, name="keys")
