"""The search backends (`WEB_SEARCH_PROVIDER`): SearXNG's JSON API, Brave Search, Tavily.

Each is one request and a parser of its documented answer into `Hit`s. A failure becomes one
of Anthropic's `web_search_tool_result_error` codes, never an exception for the caller; keys
travel in headers only and never into a log line or span.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ccgate.edge import side_http
from ccgate.edge.server_tools.websearch import Hit
from ccgate.shared.settings import Settings

log = logging.getLogger("ccgate.edge")
SEARCH_TIMEOUT = 15.0


@dataclass(frozen=True)
class SearchRequest:
    method: str
    url: str
    params: dict[str, Any] | None
    json: dict[str, Any] | None
    headers: dict[str, str]
    parse: Callable[[Any], list[Hit]]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _hits(items: Any, snippet: str, age: str) -> list[Hit]:
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and _text(item.get("url")):
            out.append(
                Hit(
                    _text(item["url"]),
                    _text(item.get("title")) or _text(item["url"]),
                    _text(item.get(snippet)),
                    _text(item.get(age)) or None,
                )
            )
    return out


def searxng(settings: Settings, query: str, count: int) -> SearchRequest:
    base = (settings.searxng_base_url or "").rstrip("/")
    return SearchRequest(
        "GET",
        f"{base}/search",
        {"q": query, "format": "json"},
        None,
        {"accept": "application/json"},
        lambda data: _hits(data.get("results"), "content", "publishedDate")[:count],
    )


def brave(settings: Settings, query: str, count: int) -> SearchRequest:
    key = settings.brave_search_api_key.get_secret_value() if settings.brave_search_api_key else ""
    return SearchRequest(
        "GET",
        f"{settings.brave_search_base_url.rstrip('/')}/web/search",
        {"q": query, "count": count},
        None,
        {"accept": "application/json", "x-subscription-token": key},
        lambda data: _hits((data.get("web") or {}).get("results"), "description", "page_age"),
    )


def tavily(settings: Settings, query: str, count: int) -> SearchRequest:
    key = settings.tavily_api_key.get_secret_value() if settings.tavily_api_key else ""
    return SearchRequest(
        "POST",
        f"{settings.tavily_base_url.rstrip('/')}/search",
        None,
        {"query": query, "max_results": count},
        {"authorization": f"Bearer {key}"},
        lambda data: _hits(data.get("results"), "content", "published_date"),
    )


PROVIDERS: dict[str, Callable[[Settings, str, int], SearchRequest]] = {
    "searxng": searxng,
    "brave": brave,
    "tavily": tavily,
}


def missing(settings: Settings) -> str | None:
    """What WEB_SEARCH_PROVIDER still needs, if anything."""
    need = {
        "searxng": ("SEARXNG_BASE_URL", settings.searxng_base_url),
        "brave": ("BRAVE_SEARCH_API_KEY", settings.brave_search_api_key),
        "tavily": ("TAVILY_API_KEY", settings.tavily_api_key),
    }.get(settings.web_search_provider)
    return f"{need[0]} is not set" if need and not need[1] else None


async def search(client: aiohttp.ClientSession, settings: Settings, query: str) -> list[Hit] | str:
    """Hits for `query`, or an Anthropic error code."""
    request = PROVIDERS[settings.web_search_provider](
        settings, query, settings.web_search_max_results
    )
    try:
        answer = await side_http.call(
            client,
            request.method,
            request.url,
            params=request.params,
            json=request.json,
            headers=request.headers,
            seconds=SEARCH_TIMEOUT,
        )
    except side_http.CallFailed as exc:
        log.warning(
            "web search (%s) failed: %s", settings.web_search_provider, type(exc.cause).__name__
        )
        return "unavailable"
    if answer.status == 429:
        return "too_many_requests"
    if answer.status != 200:
        log.warning("web search (%s) answered %d", settings.web_search_provider, answer.status)
        return "unavailable"
    try:
        data = answer.json()
    except ValueError:
        return "unavailable"
    return request.parse(data) if isinstance(data, dict) else "unavailable"
