"""`ccgate serve`: check the configuration, say where each tier goes, and run uvicorn.

The `ccgate` entry point sends `serve` here before typer is imported (as it does `statusline`):
typer 0.29 coerces every option through pydantic, and a serving worker that carried that and
the rest of the command set paid ~15 MB and ~0.3 s at start for nothing (issue 17). So the
options are argparse's, and this module imports only what serving needs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from ccgate.shared.settings import Settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ccgate serve", description="Run the gateway.")
    p.add_argument("--host", default="127.0.0.1", help="Address to bind.")
    p.add_argument("--port", type=int, default=8082, help="Port to bind.")
    p.add_argument("--workers", type=int, default=1, help="Worker processes.")
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="Serve a non-loopback address without keys.",
    )
    p.add_argument(
        "--admin-port",
        type=int,  # also applied to the default: a CCGATE_ADMIN_PORT that is no port is an error
        default=os.environ.get("CCGATE_ADMIN_PORT") or None,
        help="Serve /metrics, /readyz and /ccgate/* on this port only [env CCGATE_ADMIN_PORT].",
    )
    return p


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def preflight(args: argparse.Namespace) -> Settings:
    """The settings, or exit 2 with what to fix: a configuration that cannot work, or a
    non-loopback address with no keys to guard it."""
    from ccgate.edge import llamacpp
    from ccgate.edge.keys import has_keys
    from ccgate.edge.routing import RoutingError
    from ccgate.edge.server import check_redis_settings, is_loopback, startup_report

    try:
        settings = Settings.from_env()
        check_redis_settings(settings)
        report = startup_report(settings)
    except (RoutingError, ValueError) as exc:
        say(f"ccgate: configuration error: {exc}")
        raise SystemExit(2) from None
    if not is_loopback(args.host) and not has_keys(settings) and not args.insecure_no_auth:
        say(
            f"ccgate: refusing to serve {args.host} without keys. Create one with "
            "`ccgate keys create NAME`, or set CCGATE_API_KEYS=name:key, or pass "
            "--insecure-no-auth if something else guards this address."
        )
        raise SystemExit(2)
    say(f"ccgate edge on http://{args.host}:{args.port} ({args.workers} worker(s))")
    for line in report:
        say(line)
    for fine, text in llamacpp.findings(settings):
        say(f"  {'' if fine else 'WARNING: '}{text}")
    say(f"  use: ANTHROPIC_BASE_URL=http://{args.host}:{args.port} claude")
    if args.admin_port:
        say(f"  admin routes on port {args.admin_port} only")
    return settings


def serve(settings: Settings, host: str, port: int, workers: int, admin_port: int | None) -> None:
    import uvicorn

    from ccgate.edge.probe import report_in_background
    from ccgate.edge.transport import GuardedHttpToolsProtocol

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its samples here; /metrics adds them up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ccgate-metrics-")
    if admin_port:
        os.environ["CCGATE_ADMIN_PORT"] = str(admin_port)
    report_in_background(settings, say)
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

        from ccgate.edge.supervised import mark_supervisor

        mark_supervisor()
        Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = preflight(args)
    serve(settings, args.host, args.port, args.workers, args.admin_port)
