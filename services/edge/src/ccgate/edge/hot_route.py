"""`POST /v1/messages` straight to its handler, past the framework layers it does not use.

Mounted inside `ServerSpans` and `AdminPortOnly` (so the one server span, the admin-port split
and the HTTP/1.1 guards of `transport.py` still hold), in front of Starlette's exception
middleware and router, which the other routes keep.
Errors get the same Anthropic shapes the app's exception handlers give.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ccgate.edge.messages import ClientGone, error_response
from ccgate.edge.translate.errors import ApiError

log = logging.getLogger("ccgate.edge")

Handler = Callable[[Request], Awaitable[Response]]


def unexpected_error(exc: Exception) -> Response:
    log.exception("unexpected error: %s: %s", type(exc).__name__, exc)
    return error_response(ApiError(500, "api_error", "internal gateway error; see the gateway log"))


class MessagesRoute:
    """ASGI middleware: the hot route answered here, everything else passed on."""

    def __init__(self, app: Any, handler: Handler, path: str = "/v1/messages") -> None:
        self.app = app
        self.handler = handler
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await self.handler(Request(scope, receive))
        except ClientGone:
            return  # uvicorn sees a disconnected client and logs nothing
        except ApiError as error:
            response = error_response(error)
        except Exception as exc:
            response = unexpected_error(exc)
        await response(scope, receive, send)
