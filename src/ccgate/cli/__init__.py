"""The `ccgate` command: wires the services' sub-commands together."""


def main() -> None:
    from ccgate.cli.main import app

    app()
