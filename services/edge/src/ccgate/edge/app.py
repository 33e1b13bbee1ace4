"""The edge's FastAPI app: the factory and thin routes. The work is in `messages.py`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ccgate.edge import metrics, openapi
from ccgate.edge.auth import Authenticator
from ccgate.edge.gateway import Gateway, limits_from
from ccgate.edge.keys import open_store
from ccgate.edge.messages import error_response, handle_count_tokens, handle_messages
from ccgate.edge.translate.errors import ApiError, invalid_request
from ccgate.limiter.api import Limiter
from ccgate.limiter.memory import MemoryLimiter
from ccgate.shared.settings import Settings

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

    primary = RedisLimiter(settings.redis_url, limits_for, lease_ttl=settings.limiter_lease_ttl)
    return FailoverLimiter(
        primary, limits_for, settings.limiter_failure_mode, settings.limiter_replicas
    )


def create_app(settings: Settings | None = None, limiter: Limiter | None = None) -> FastAPI:
    settings = settings or Settings()
    limiter = limiter or make_limiter(settings)
    gateway = Gateway(settings, limiter)
    auth = Authenticator(settings.api_keys(), open_store(settings.redis_url))
    try:
        auth.refresh()
    except Exception as exc:  # the store is re-read every few seconds; start anyway
        log.error("cannot read the key store: %s", type(exc).__name__)
    started = time.time()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gateway.warm_up()
        refresher = asyncio.create_task(refresh_keys(auth))
        yield
        refresher.cancel()
        await gateway.aclose()
        await limiter.close()

    app = FastAPI(title="ccgate", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gateway
    app.state.limiter = limiter
    if settings.ccgate_admin_port:
        app.add_middleware(AdminPortOnly, admin_port=settings.ccgate_admin_port)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(invalid_request(f"{where}: {first.get('msg', 'invalid')}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = _STATUS_TYPES.get(exc.status_code, "api_error")
        message = (
            f"no route {request.method} {request.url.path}; this gateway serves POST /v1/messages"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return error_response(ApiError(exc.status_code, kind, message))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error: %s: %s", type(exc).__name__, exc)
        return error_response(
            ApiError(500, "api_error", "internal gateway error; see the gateway log")
        )

    @app.post("/v1/messages", **openapi.messages_operation())
    async def messages(request: Request) -> Response:
        return await handle_messages(request, gateway, auth.identify(request.headers))

    @app.post("/v1/messages/count_tokens", **openapi.count_tokens_operation())
    async def count_tokens(request: Request) -> Response:
        auth.identify(request.headers)
        return await handle_count_tokens(request, gateway)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        auth.identify(request.headers)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        data: list[dict[str, Any]] = []
        for tier, routes in gateway.router.table().items():
            for route in routes:
                model_id = f"{route.provider}/{route.model}"
                if any(d["id"] == model_id for d in data):
                    continue
                data.append(
                    {
                        "type": "model",
                        "id": model_id,
                        "display_name": f"{model_id} ({tier})",
                        "created_at": created,
                    }
                )
        return _json(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def root() -> Response:
        return _json({"service": "ccgate", "messages": "/v1/messages"})

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        status = await limiter.health()
        degraded = bool(status.get("degraded"))
        body = {"status": "degraded" if degraded else "ready", "limiter": status.get("backend")}
        if degraded:
            body["failure_mode"] = settings.limiter_failure_mode
        unready = degraded and settings.limiter_failure_mode == "closed"
        return _json(body, 503 if unready else 200)

    @app.get("/metrics")
    async def metrics_route() -> Response:
        metrics.refresh_limiter_gauges(await limiter.status())
        metrics.refresh_pool_gauges(gateway.pool_state())
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/ccgate/usage")
    async def usage(request: Request, key: str | None = None, since: str | None = None) -> Response:
        record = auth.identify(request.headers)
        if record is not None and key not in (None, record.name) and not record.models == "*":
            raise ApiError(403, "permission_error", "a restricted key may only read its own usage")
        try:
            start = date.fromisoformat(since) if since else datetime.now(UTC).date()
        except ValueError:
            raise invalid_request("since: a date like 2026-11-25") from None
        rows = await gateway.usage.rows(key, start)
        return _json({"persistent": gateway.usage.persistent, "rows": [r.as_dict() for r in rows]})

    @app.get("/ccgate/limiter")
    async def limiter_status(request: Request) -> Response:
        auth.identify(request.headers)
        return _json(await limiter.status())

    return app
