"""Each routed model's context window: the tier's setting, else what the backend says.

`MODEL_OPUS_CONTEXT_WINDOW` … `MODEL_CONTEXT_WINDOW` follow the `MODEL_*` routing names: a
tier's window applies to every model of its chain (and an unset tier falls back to
`MODEL_CONTEXT_WINDOW`, as an unset tier's route falls back to `MODEL`). A model no setting
covers gets the window its backend reports (see `probes.py`), read once at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp

from ccgate.edge.context.probes import Reading, read_window, read_window_sync
from ccgate.edge.providers.table import Provider
from ccgate.edge.routing import Route, Tier, tier_value
from ccgate.shared.settings import Settings

log = logging.getLogger("ccgate.edge")


@dataclass(frozen=True)
class Window:
    tokens: int
    source: str  # the setting's name, or the backend endpoint that said it

    def describe(self) -> str:
        return f"{self.tokens:,} tokens ({self.source})"


def configured(settings: Settings, tier: Tier) -> Window | None:
    name, tokens = tier_value(settings, tier, "_CONTEXT_WINDOW")
    return Window(tokens, name) if tokens else None


class ContextWindows:
    """Windows by (tier, route): settings first, then what the backends reported."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._discovered: dict[Route, Window] = {}
        self._tools_dropped: set[Route] = set()

    def window(self, tier: Tier, route: Route) -> Window | None:
        return configured(self._settings, tier) or self._discovered.get(route)

    def discovered(self, route: Route) -> Window | None:
        return self._discovered.get(route)

    def drops_tools(self, route: Route) -> bool:
        """The backend said it leaves tool schemas out of the prompt (see `probes.py`)."""
        return route in self._tools_dropped

    def learn(self, route: Route, found: Reading | tuple[int, str] | None) -> None:
        if found is not None:
            self._discovered[route] = Window(found[0], found[1])
            if isinstance(found, Reading) and found.drops_tools:
                self._tools_dropped.add(route)

    async def discover(
        self,
        routes: Iterable[Route],
        providers: dict[str, Provider],
        client: aiohttp.ClientSession,
    ) -> None:
        """Ask each backend once for the windows no setting covers (at start-up)."""
        todo = sorted(set(routes) - set(self._discovered), key=lambda r: (r.provider, r.model))
        found = await asyncio.gather(
            *(read_window(client, providers[r.provider], r.model) for r in todo)
        )
        for route, result in zip(todo, found, strict=True):
            self.learn(route, result)
            if result:
                log.info("context window of %s/%s: %s", route.provider, route.model, result[0])

    def discover_sync(self, routes: Iterable[Route], providers: dict[str, Provider]) -> None:
        for route in set(routes) - set(self._discovered):
            self.learn(route, read_window_sync(providers[route.provider], route.model))
