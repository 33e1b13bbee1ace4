"""The edge's ASGI app (Starlette): the factory and thin routes. The work is in `messages.py`.

Starlette, not FastAPI: every route reads raw JSON or a query string by hand and the OpenAPI
document is written out in `openapi.py`, so FastAPI's model layer was ~6 MB and ~0.15 s of
start-up that nothing used."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ccgate.edge import metrics, openapi, side_http, status_page
from ccgate.edge.auth import Authenticator
from ccgate.edge.context import discovery
from ccgate.edge.gateway import Gateway, limits_from
from ccgate.edge.hot_route import MessagesRoute, unexpected_error
from ccgate.edge.keys import open_store
from ccgate.edge.messages import error_response, handle_count_tokens, handle_messages
from ccgate.edge.probe import BackendProbe
from ccgate.edge.server_span import ServerSpans
from ccgate.edge.statusline import session_view
from ccgate.edge.translate.errors import ApiError, invalid_request
from ccgate.limiter.api import Limiter
from ccgate.limiter.memory import MemoryLimiter
from ccgate.shared.settings import Settings
from ccgate.shared.telemetry import recording_provider_installed

log = logging.getLogger("ccgate.edge")

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


KEY_REFRESH_SECONDS = 5.0
ADMIN_PATHS = ("/metrics", "/readyz", "/ccgate/")


class AdminPortOnly:
    """With CCGATE_ADMIN_PORT set, the operational routes answer on that port only (for
    cluster-internal scraping) and the public port serves the API alone — and the reverse."""

    def __init__(self, app: Any, admin_port: int) -> None:
        self.app = app
        self.admin_port = admin_port

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            server = scope.get("server") or (None, None)
            on_admin = server[1] == self.admin_port
            if scope["path"].startswith(ADMIN_PATHS) != on_admin and scope["path"] != "/healthz":
                where = "the admin port" if not on_admin else "the API port"
                await error_response(
                    ApiError(404, "not_found_error", f"{scope['path']} is served on {where}")
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def refresh_keys(auth: Authenticator) -> None:
    """Revoked keys stop working, new keys start working, within KEY_REFRESH_SECONDS."""
    while True:
        await asyncio.sleep(KEY_REFRESH_SECONDS)
        try:
            await asyncio.to_thread(auth.refresh)
        except Exception as exc:
            log.warning("key store refresh failed: %s", type(exc).__name__)


def make_limiter(settings: Settings) -> Limiter:
    limits_for = limits_from(settings)
    if not settings.redis_url:
        return MemoryLimiter(limits_for)
    from ccgate.limiter.failover import FailoverLimiter
    from ccgate.limiter.redis import RedisLimiter

    primary = RedisLimiter(
        settings.redis_url,
        limits_for,
        mode=settings.redis_mode,
        lease_ttl=settings.limiter_lease_ttl,
    )
    return FailoverLimiter(
        primary, limits_for, settings.limiter_failure_mode, settings.limiter_replicas
    )


def create_app(settings: Settings | None = None, limiter: Limiter | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    limiter = limiter or make_limiter(settings)
    gateway = Gateway(settings, limiter)
    auth = Authenticator(settings.api_keys(), open_store(settings.redis_url, settings.redis_mode))
    try:
        auth.refresh()
    except Exception as exc:  # the store is re-read every few seconds; start anyway
        log.error("cannot read the key store: %s", type(exc).__name__)
    started = time.time()
    probe = BackendProbe(settings)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        gateway.warm_up()
        probe.refresh()
        # Start-up only, off the hot path: the window probes use a short-lived session.
        async with side_http.session() as client:
            await gateway.context.discover(gateway.providers, client)
        refresher = asyncio.create_task(refresh_keys(auth))
        yield
        refresher.cancel()
        await probe.aclose()
        await gateway.aclose()
        await limiter.close()

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        kind = _STATUS_TYPES.get(exc.status_code, "api_error")
        message = (
            f"no route {request.method} {request.url.path}; this gateway serves POST /v1/messages"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return error_response(ApiError(exc.status_code, kind, message))

    async def unexpected(_: Request, exc: Exception) -> Response:
        return unexpected_error(exc)

    async def messages(request: Request) -> Response:
        return await handle_messages(request, gateway, auth.identify(request.headers))

    async def count_tokens(request: Request) -> Response:
        return await handle_count_tokens(request, auth.identify(request.headers), gateway)

    async def models(request: Request) -> Response:
        auth.identify(request.headers)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        return _json(discovery.models_page(gateway.context, created))

    async def root(_: Request) -> Response:
        return _json({"service": "ccgate", "messages": "/v1/messages"})

    async def healthz(_: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(_: Request) -> Response:
        status = await limiter.health()
        degraded = bool(status.get("degraded"))
        body: dict[str, Any] = {
            "status": "degraded" if degraded else "ready",
            "limiter": status.get("backend"),
            "backends": probe.latest(),  # reported, not gating: a pod cannot fix its backend
        }
        if degraded:
            body["failure_mode"] = settings.limiter_failure_mode
        unready = degraded and settings.limiter_failure_mode == "closed"
        return _json(body, 503 if unready else 200)

    async def metrics_route(_: Request) -> Response:
        metrics.refresh_limiter_gauges(await limiter.status())
        metrics.refresh_pool_gauges(gateway.pool_state())
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    async def usage(request: Request) -> Response:
        record = auth.identify(request.headers)
        key = request.query_params.get("key")
        since = request.query_params.get("since")
        if record is not None and key not in (None, record.name) and not record.models == "*":
            raise ApiError(403, "permission_error", "a restricted key may only read its own usage")
        try:
            start = date.fromisoformat(since) if since else datetime.now(UTC).date()
        except ValueError:
            raise invalid_request("since: a date like 2026-11-25") from None
        rows = await gateway.usage.rows(key, start)
        return _json({"persistent": gateway.usage.persistent, "rows": [r.as_dict() for r in rows]})

    async def status_page_route(request: Request) -> Response:
        refused = status_page.refused(auth, request.headers, bool(settings.ccgate_admin_port))
        return refused or HTMLResponse(await status_page.render(gateway, probe))

    async def statusline(request: Request) -> Response:
        record = auth.identify(request.headers)
        query = request.query_params
        session = query.get("session") or None
        view = await session_view(gateway, record, query.get("model", ""), session)
        return _json(view)

    async def limiter_status(request: Request) -> Response:
        auth.identify(request.headers)
        return _json(await limiter.status())

    async def openapi_document(_: Request) -> Response:
        return _json(document)

    routes = [
        # Answered by MessagesRoute below; the route stays for 405s and the OpenAPI document.
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/ccgate/usage", usage, methods=["GET"]),
        Route("/ccgate/", status_page_route, methods=["GET"]),
        Route("/v1/ccgate/statusline", statusline, methods=["GET"]),
        Route("/ccgate/limiter", limiter_status, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
    ]
    document = openapi.document("ccgate", "0.1.0")
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: api_error,
            StarletteHTTPException: http_error,
            Exception: unexpected,
        },
    )
    app.state.gateway = gateway
    app.state.limiter = limiter
    app.state.probe = probe

    # Innermost first: the hot route, the admin-port split, then — outermost, so every route
    # runs inside its request's span — the server span. With no tracer provider installed
    # every span is a no-op, which still cost CPU and ~2 KB per open stream (attributes,
    # context copies), so it is not mounted then.
    app.add_middleware(MessagesRoute, handler=messages)
    if settings.ccgate_admin_port:
        app.add_middleware(AdminPortOnly, admin_port=settings.ccgate_admin_port)
    if recording_provider_installed():
        app.add_middleware(ServerSpans, routes=[route.path for route in routes])
    return app
