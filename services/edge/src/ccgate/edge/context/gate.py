"""The gateway's one hook into context handling: fit a request to its chain's windows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from ccgate.edge.context.fit import Fit, fit_routes, usage_scale
from ccgate.edge.context.windows import ContextWindows, Window, configured
from ccgate.edge.providers.table import Provider
from ccgate.edge.routing import Resolved, Route, Router, RoutingError
from ccgate.edge.translate.tokens import count_tokens
from ccgate.shared.settings import Settings

log = logging.getLogger("ccgate.edge")

# Below this share of the smallest known window the size estimate is enough; above it the
# prompt is counted (the estimate, from the body's bytes, errs by tens of percent).
COUNT_ABOVE = 0.5


class ContextGate:
    def __init__(self, settings: Settings, router: Router) -> None:
        self.settings = settings
        self.router = router
        self.windows = ContextWindows(settings)

    def all_routes(self) -> set[Route]:
        routes = {r for chain in self.router.table().values() for r in chain}
        return routes | set(self.router.extra) | set(self.router.long_context)

    async def discover(
        self,
        providers: dict[str, Provider],
        client: aiohttp.ClientSession,
    ) -> None:
        await self.windows.discover(self.all_routes(), providers, client)

    def window(self, route: Route) -> Window | None:
        return self.windows.window(self.router.tier_routing(route), route)

    async def fit(self, req: dict[str, Any], resolved: Resolved, estimate: int) -> Fit:
        """Routes that hold the prompt, each with its usage factor (see `fit.py`). Counting a
        large prompt takes ~17 ms per 100 KB, so it runs off the event loop."""

        def window_of(route: Route) -> Window | None:
            return self.windows.window(resolved.tier, route)

        known = [w.tokens for r in resolved.routes if (w := window_of(r)) is not None]

        if not known:
            return Fit(resolved.routes, {})
        if estimate < COUNT_ABOVE * min(known):
            tokens = estimate
        else:
            # Counted as the backends will see it: without the tool schemas only when every
            # route's backend drops them (llama-server whose template cannot render tools).
            rendered = not all(self.windows.drops_tools(r) for r in resolved.routes)
            tokens = await asyncio.to_thread(count_tokens, req, rendered)
        fit = fit_routes(
            resolved.routes,
            window_of,
            tokens,
            self.router.long_context,
            self.windows.discovered,  # a long-context model's tier window is not its own
            self._scale_of,
        )
        if fit.routes[0] not in resolved.routes:
            log.info("prompt of %d tokens is over its window; sent to MODEL_LONG_CONTEXT", tokens)
        return fit

    def count_scale(self, req: dict[str, Any]) -> float:
        """The factor for `count_tokens`, the same one the request's usage would get."""
        try:
            resolved = self.router.resolve(str(req.get("model", "")))
        except RoutingError:
            return 1.0
        window = self.windows.window(resolved.tier, resolved.routes[0]) if resolved.routes else None
        return self._scale_of(window)

    def _scale_of(self, window: Window | None) -> float:
        return usage_scale(
            window,
            self.settings.claude_code_context_window,
            self.settings.context_compact_at,
            self.settings.context_usage_scaling,
        )

    def backend_fields(self, route: Route) -> dict[str, Any]:
        """Extra body fields for the backend: Ollama runs a model at `options.num_ctx`, and at
        its small default without it, so a configured window is sent (a discovered one is not:
        the trained length could exhaust the server's memory). Ollama documents that its
        OpenAI endpoint ignores the field; set OLLAMA_CONTEXT_LENGTH on the server for that."""
        if route.provider != "ollama":
            return {}
        window = configured(self.settings, self.router.tier_routing(route))
        return {"options": {"num_ctx": window.tokens}} if window else {}
