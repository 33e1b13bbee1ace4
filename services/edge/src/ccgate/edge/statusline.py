"""What `ccgate statusline` shows for one Claude Code session, served to that session's own
caller at `GET /v1/ccgate/statusline` (on the API port: the status line runs beside Claude
Code, with its key): the backend the session's model routes to, that provider's quota state,
and the caller's tokens today.

Without team keys the caller is who the edge saw behind the session id (Claude Code's device),
so the edge remembers the last callers per session id — a bounded map, per replica.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ccgate.edge.routing import RoutingError

if TYPE_CHECKING:
    from ccgate.edge.gateway import Gateway
    from ccgate.edge.keys import KeyRecord


class SessionCallers:
    """session id → the caller identity its requests carried (newest kept, oldest dropped)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._callers: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    def remember(self, session: str | None, caller: str) -> None:
        if not session:
            return
        self._callers[session] = caller
        self._callers.move_to_end(session)
        while len(self._callers) > self._capacity:
            self._callers.popitem(last=False)

    def get(self, session: str | None) -> str | None:
        return self._callers.get(session) if session else None


def quota_state(state: dict[str, Any] | None) -> dict[str, Any]:
    """A provider's limiter state, reduced to what a one-line status can say."""
    if not state:
        return {"state": "idle"}
    queued = int(state.get("queued") or sum((state.get("queue_depth") or {}).values()))
    paused = float(state.get("paused_for") or 0.0)
    summary: dict[str, Any] = {
        "in_flight": state.get("in_flight", 0),
        "max_concurrency": state.get("max_concurrency"),
        "tokens_left": state.get("tokens_left"),
        "rate_limit": state.get("rate_limit"),
        "queued": queued,
        "paused_for": round(paused, 1),
    }
    summary["state"] = "paused" if paused > 0 else "queueing" if queued else "ok"
    return summary


async def session_view(
    gateway: Gateway, record: KeyRecord | None, model: str, session: str | None
) -> dict[str, Any]:
    try:
        routes = gateway.router.resolve(model).routes if model else ()
    except RoutingError:
        routes = ()
    route = routes[0] if routes else None
    status = await gateway.limiter.status()
    caller = record.name if record is not None else gateway.session_callers.get(session)
    return {
        "model": model,
        "backend": f"{route.provider}/{route.model}" if route else None,
        "fallbacks": [f"{r.provider}/{r.model}" for r in routes[1:]],
        "quota": quota_state(status.get("providers", {}).get(route.provider) if route else None),
        "caller": caller,
        "tokens_today": await gateway.usage.tokens_today(caller) if caller else None,
    }
