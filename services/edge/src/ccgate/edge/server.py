"""Running the edge: the uvicorn app factory and the start-up report."""

from __future__ import annotations

import ipaddress

from starlette.applications import Starlette

from ccgate.edge.app import create_app
from ccgate.edge.context.report import context_report
from ccgate.edge.providers.table import configure_all
from ccgate.edge.routing import Router, tier_setting
from ccgate.edge.supervised import end_with_supervisor
from ccgate.shared.logging import setup_logging
from ccgate.shared.redis_url import check as check_redis
from ccgate.shared.settings import Settings
from ccgate.shared.telemetry import setup_tracing


def app_factory() -> Starlette:
    """What each uvicorn worker calls: settings come from the environment and `.env`."""
    end_with_supervisor()
    settings = Settings.from_env()
    setup_logging(settings.log_level, settings.log_json)
    setup_tracing()
    return create_app(settings)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redis_settings(settings: Settings) -> None:
    """REDIS_MODE/REDIS_URL that cannot work stop the start (ValueError naming the fix); the
    server is asked whether it is a cluster node. An unreachable one is the failure mode's job."""
    if settings.redis_url:
        check_redis(settings.redis_url, settings.redis_mode)
        from ccgate.shared.redis import mode_mismatch  # redis-py only when Redis is used

        problem = mode_mismatch(settings.redis_url, settings.redis_mode)
        if problem:
            raise ValueError(problem)


def startup_report(settings: Settings) -> list[str]:
    """Which tier routes where, and what is still missing — said plainly at start."""
    router = Router(settings)
    providers = configure_all(settings)
    lines = []
    for tier, routes in router.table().items():
        name, _ = tier_setting(settings, tier)
        label = "other models" if tier == "default" else f"{tier:<6}"
        hops = []
        for route in routes:
            provider = providers[route.provider]
            problem = provider.missing()
            where = f"{route.provider}/{route.model} @ {provider.url}"
            hops.append(f"{where}  [MISSING: {problem}]" if problem else where)
        lines.append(f"  {label} ({name}) -> " + "  then  ".join(hops))
    lines += context_report(settings, router, providers)
    limiter = (
        f"redis ({settings.redis_mode})"
        if settings.redis_url
        else "in-memory (one process; set REDIS_URL to share)"
    )
    lines.append(f"  limiter: {limiter}")
    auth = (
        f"{len(settings.api_keys())} team key(s)"
        if settings.api_keys()
        else "off (no CCGATE_API_KEYS)"
    )
    lines.append(f"  auth: {auth}")
    return lines
