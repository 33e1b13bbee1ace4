"""Search services on loopback, answering in each one's documented response format:
SearXNG `GET /search?format=json`, Brave `GET /res/v1/web/search`, Tavily `POST /search`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from tests.fakes.server import ServedApp


@dataclass(frozen=True)
class Page:
    url: str
    title: str
    text: str
    date: str | None = None


class FakeSearch(ServedApp):
    def __init__(self, pages: list[Page] | None = None) -> None:
        self.pages = pages or []
        self.status = 200
        self.seen: list[dict[str, Any]] = []  # path, query params or body, headers
        self.app = Starlette(
            routes=[
                Route("/search", self._searxng, methods=["GET"]),
                Route("/search", self._tavily, methods=["POST"]),
                Route("/res/v1/web/search", self._brave, methods=["GET"]),
                Route("/page", self._page, methods=["GET"]),  # a web page to fetch
            ]
        )

    async def _page(self, request: Request) -> HTMLResponse:
        self.seen.append({"path": "/page"})
        body = "".join(f"<h1>{p.title}</h1><p>{p.text}</p>" for p in self.pages)
        return HTMLResponse(f"<html><head><title>page</title></head><body>{body}</body></html>")

    def _failed(self) -> JSONResponse | None:
        if self.status == 200:
            return None
        return JSONResponse({"error": "scripted failure"}, status_code=self.status)

    async def _searxng(self, request: Request) -> JSONResponse:
        self.seen.append({"path": "/search", "params": dict(request.query_params)})
        results = [
            {
                "url": p.url,
                "title": p.title,
                "content": p.text,
                "engine": "duckduckgo",
                "engines": ["duckduckgo"],
                "score": 1.0,
                "category": "general",
                **({"publishedDate": p.date} if p.date else {}),
            }
            for p in self.pages
        ]
        body = {"query": request.query_params.get("q"), "number_of_results": len(results)}
        return self._failed() or JSONResponse(
            {**body, "results": results, "answers": [], "suggestions": []}
        )

    async def _brave(self, request: Request) -> JSONResponse:
        self.seen.append(
            {
                "path": "/res/v1/web/search",
                "params": dict(request.query_params),
                "token": request.headers.get("x-subscription-token"),
            }
        )
        results = [
            {
                "type": "search_result",
                "title": p.title,
                "url": p.url,
                "description": p.text,
                **({"page_age": p.date} if p.date else {}),
            }
            for p in self.pages
        ]
        return self._failed() or JSONResponse(
            {
                "type": "search",
                "query": {"original": request.query_params.get("q")},
                "web": {"type": "search", "results": results},
            }
        )

    async def _tavily(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.seen.append(
            {"path": "/search", "body": body, "auth": request.headers.get("authorization")}
        )
        results = [
            {
                "title": p.title,
                "url": p.url,
                "content": p.text,
                "score": 0.9,
                **({"published_date": p.date} if p.date else {}),
            }
            for p in self.pages
        ]
        return self._failed() or JSONResponse(
            {"query": body.get("query"), "results": results, "response_time": 0.5}
        )
