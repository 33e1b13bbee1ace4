"""Model-info endpoints of three backends, answering in each one's documented format:
Ollama `POST /api/show`, LM Studio `GET /api/v0/models`, OpenRouter `GET /api/v1/models`."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import ServedApp


class FakeModelInfo(ServedApp):
    def __init__(self) -> None:
        self.ollama: dict[str, dict[str, Any]] = {}  # model → /api/show answer
        self.lmstudio: list[dict[str, Any]] = []
        self.openrouter: list[dict[str, Any]] = []
        self.seen: list[tuple[str, str]] = []  # (path, authorization header)
        self.app = Starlette(
            routes=[
                Route("/api/show", self._show, methods=["POST"]),
                Route("/api/v0/models", self._lmstudio, methods=["GET"]),
                Route("/api/v1/models", self._openrouter, methods=["GET"]),
            ]
        )

    async def _show(self, request: Request) -> JSONResponse:
        self.seen.append((request.url.path, request.headers.get("authorization", "")))
        model = (await request.json()).get("model")
        if model not in self.ollama:
            return JSONResponse({"error": f"model '{model}' not found"}, status_code=404)
        return JSONResponse(self.ollama[model])

    async def _lmstudio(self, request: Request) -> JSONResponse:
        self.seen.append((request.url.path, request.headers.get("authorization", "")))
        return JSONResponse({"object": "list", "data": self.lmstudio})

    async def _openrouter(self, request: Request) -> JSONResponse:
        self.seen.append((request.url.path, request.headers.get("authorization", "")))
        return JSONResponse({"data": self.openrouter})
