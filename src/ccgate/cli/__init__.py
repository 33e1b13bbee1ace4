"""The `ccgate` command: wires the services' sub-commands together."""

import sys


def main() -> None:
    if sys.argv[1:2] == ["statusline"]:
        # Claude Code runs this after every message: a third of the start-up time of the
        # whole command set (which imports the gateway and the bot).
        import typer

        from ccgate.edge.statusline_command import statusline

        del sys.argv[1]
        typer.run(statusline)
        return
    if sys.argv[1:2] == ["serve"]:
        # The serving process: argparse, not typer (whose options pull in pydantic), and only
        # the gateway's modules (ccgate/edge/run.py).
        from ccgate.edge.run import main as serve

        serve(sys.argv[2:])
        return
    from ccgate.cli.main import app

    app()
