"""The one call the request path makes: open a message, running server tools if any."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ccgate.edge import side_http
from ccgate.edge.gateway import Gateway, Opened
from ccgate.edge.server_tools import search, websearch
from ccgate.edge.server_tools.session import WebSearchSession
from ccgate.edge.tracing import RequestTrace
from ccgate.edge.translate.tokens import estimate_tokens
from ccgate.limiter.api import UserLimits

log = logging.getLogger("ccgate.edge")


async def open_message(
    gateway: Gateway,
    req: dict[str, Any],
    user: str,
    input_estimate: int,
    headers: dict[str, str],
    rtrace: RequestTrace,
    user_limits: UserLimits | None = None,
) -> Opened:
    spec = websearch.find(req)
    if spec is None:
        return await gateway.open_message(req, user, input_estimate, headers, rtrace, user_limits)
    settings = gateway.settings
    problem = (
        "WEB_SEARCH_PROVIDER=off"
        if settings.web_search_provider == "off"
        else search.missing(settings)
    )
    if problem:
        log.info("web_search tool removed from the request (%s)", problem)
        bare = websearch.without_tool(req)
        return await gateway.open_message(bare, user, input_estimate, headers, rtrace, user_limits)

    async def open_round(body: dict[str, Any], trace: RequestTrace) -> Opened:
        estimate = estimate_tokens(len(orjson.dumps(body)))
        return await gateway.open_message(body, user, estimate, headers, trace, user_limits)

    offered = websearch.offered(req, spec)
    # Every round's spans hang below the request's one server span (ServerSpans ends it).
    first = await open_round(offered, rtrace)
    client = side_http.session()
    return WebSearchSession(first, offered, spec, open_round, settings, client)
