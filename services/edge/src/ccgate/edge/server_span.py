"""The one SERVER span of each HTTP request, opened at the outermost ASGI layer.

Every route runs inside it: ccgate's request code adds its own attributes (`user.id`,
`session.id`, tool-error events and links) to this span and hangs `limiter.admit` and
`chat {model}` under it, so a request is one trace with one server span, and the
`traceparent` sent upstream descends from it. Probes make no span: `/healthz`, `/readyz` and `/metrics` by
default, or what `OTEL_PYTHON_ASGI_EXCLUDED_URLS` / `OTEL_PYTHON_EXCLUDED_URLS` say.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import ExcludeList, parse_excluded_urls

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_EXCLUDED = "^/healthz$,^/readyz$,^/metrics$"
tracer = trace.get_tracer("ccgate.edge")


class _ScopeHeaders(Getter[Scope]):
    def get(self, carrier: Scope, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier["headers"] if k == name]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier["headers"]]


_HEADERS = _ScopeHeaders()


def excluded_paths() -> ExcludeList:
    """The standard variables, as OpenTelemetry's own ASGI middleware reads them; set to an
    empty string, every path is traced."""
    value = os.environ.get("OTEL_PYTHON_ASGI_EXCLUDED_URLS")
    if value is None:
        value = os.environ.get("OTEL_PYTHON_EXCLUDED_URLS", DEFAULT_EXCLUDED)
    return parse_excluded_urls(value)


def request_attributes(scope: Scope, route: str | None) -> dict[str, Any]:
    """The HTTP server span's attributes known before the app runs (semantic conventions)."""
    attributes: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if route:
        attributes["http.route"] = route
    server, client = scope.get("server"), scope.get("client")
    if server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    if client:
        attributes["client.address"], attributes["client.port"] = client[0], client[1]
    for name, value in scope["headers"]:
        if name == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")[:256]
    return attributes


class ServerSpans:
    """ASGI middleware: one SERVER span per HTTP request, current while the app runs, ended
    when the app returns (after a stream's last byte and the lease's release)."""

    def __init__(
        self, app: ASGIApp, routes: Iterable[str], excluded: ExcludeList | None = None
    ) -> None:
        self.app = app
        self.routes = frozenset(routes)
        self.excluded = excluded or excluded_paths()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.excluded.url_disabled(scope["path"]):
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in self.routes else None
        method = scope["method"]
        span = tracer.start_span(
            f"{method} {route}" if route else method,
            context=propagate.extract(scope, getter=_HEADERS),
            kind=SpanKind.SERVER,
            attributes=request_attributes(scope, route),
        )
        status = 0

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
            await send(message)

        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                await self.app(scope, receive, send_seen)
        except BaseException as exc:
            if isinstance(exc, Exception):
                _failed(span, type(exc).__qualname__)
            raise
        finally:
            if status >= 500:
                _failed(span, str(status))
            span.end()


def _failed(span: trace.Span, error_type: str) -> None:
    """ERROR status; the request code's own `error.type` (e.g. `api_error`) is kept."""
    attributes = getattr(span, "attributes", None) or {}
    if "error.type" not in attributes:
        span.set_attribute("error.type", error_type)
    if getattr(span, "status", Status(StatusCode.UNSET)).status_code != StatusCode.ERROR:
        span.set_status(Status(StatusCode.ERROR))
