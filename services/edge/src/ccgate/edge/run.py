"""The serving process: uvicorn and the edge app, and nothing of the command line.

`ccgate serve` checks the configuration, prints the start-up report and then replaces itself
with `python -m ccgate.edge.run` (exec, same PID). The CLI's typer coerces its options through
pydantic: kept in the process that serves, that is ~20 MB a worker for nothing (issue 17).
"""

from __future__ import annotations

import argparse
import os
import sys


def command(host: str, port: int, workers: int, admin_port: int | None) -> list[str]:
    """The argv that runs the server with these options (what `ccgate serve` execs)."""
    argv = [sys.executable, "-m", "ccgate.edge.run", "--host", host, "--port", str(port)]
    argv += ["--workers", str(workers)]
    return argv + (["--admin-port", str(admin_port)] if admin_port else [])


def serve(host: str, port: int, workers: int, admin_port: int | None) -> None:
    # Imported here: `ccgate serve` imports this module for `command` just before its exec.
    import uvicorn

    from ccgate.edge.probe import report_in_background
    from ccgate.edge.transport import GuardedHttpToolsProtocol
    from ccgate.shared.settings import Settings

    report_in_background(Settings.from_env(), lambda line: print(line, file=sys.stderr))
    if admin_port:
        os.environ["CCGATE_ADMIN_PORT"] = str(admin_port)
    config = uvicorn.Config(
        "ccgate.edge.server:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,
        ws="none",  # the edge serves no WebSocket; "auto" imports websockets when installed
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=30,
    )
    sockets = [config.bind_socket()]
    if admin_port:
        sockets.append(uvicorn.Config(config.app, host=host, port=admin_port).bind_socket())
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ccgate.edge.run",
        description="Serve the edge (`ccgate serve` checks first).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--admin-port", type=int, default=None)
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.workers, args.admin_port)


if __name__ == "__main__":
    main()
