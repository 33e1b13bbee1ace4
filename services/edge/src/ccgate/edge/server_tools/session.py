"""Several upstream rounds behind one client response: the model calls `web_search`, the
gateway searches, streams Anthropic's `server_tool_use` + `web_search_tool_result` blocks,
hands the results back and lets the model go on — up to the tool's `max_uses`.

Each round is a request of its own through `Gateway.open_message` (admitted by the limiter,
traced as its own `chat` span); the client sees one message: one `message_start`, the blocks
of every round with consecutive indices, and one `message_delta` whose usage sums the rounds
and counts `server_tool_use.web_search_requests`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ccgate.edge.gateway import Opened
from ccgate.edge.routing import Route
from ccgate.edge.server_tools import websearch
from ccgate.edge.server_tools.search import search
from ccgate.edge.tracing import RequestTrace
from ccgate.edge.translate.stream import Event
from ccgate.limiter.api import Outcome
from ccgate.shared.settings import Settings

log = logging.getLogger("ccgate.edge")

OpenRound = Callable[[dict[str, Any], RequestTrace], Awaitable[Opened]]


@dataclass
class _Round:
    """What one upstream round produced, as the client does not see it."""

    call: dict[str, Any] | None = None  # the model's web_search call: id, json parts
    texts: dict[int, list[str]] = field(default_factory=dict)
    delta: dict[str, Any] | None = None
    input_tokens: int = 0


class WebSearchSession(Opened):
    """An `Opened` whose events come from as many rounds as the searches take. Its own
    fields are the first round's; each round's lease is released when the round is done."""

    def __init__(
        self,
        first: Opened,
        req: dict[str, Any],
        spec: websearch.WebSearchSpec,
        open_round: OpenRound,
        settings: Settings,
        client: aiohttp.ClientSession,
    ) -> None:
        super().__init__(**{f.name: getattr(first, f.name) for f in dataclasses.fields(first)})
        self._current = first
        self._req = req
        self._spec = spec
        self._open_round = open_round
        self._settings = settings
        self._client = client
        self.searches = 0

    @property
    def current_route(self) -> Route:
        return self._current.route

    def observe(self, events: list[Event]) -> None:
        self._current.observe(events)

    async def close(self, outcome: Outcome) -> None:
        if self._closed:
            return
        self._closed = True
        self._current.error = self.error
        try:
            await self._current.close(outcome)
        finally:  # the request's server span is ended by ServerSpans, not here
            await self._client.close()

    async def events(self) -> AsyncIterator[list[Event]]:
        started = False
        next_index = 0
        usage = {"input_tokens": 0, "output_tokens": 0}
        req = self._req
        while True:
            round_ = _Round()
            local: dict[int, int] = {}
            async for batch in self._current.events():
                out: list[Event] = []
                for name, data in batch:
                    if name == "message_start":
                        round_.input_tokens = int(data["message"]["usage"].get("input_tokens") or 0)
                        if not started:
                            started = True
                            out.append((name, data))
                    elif name.startswith("content_block_"):
                        index = data["index"]
                        if name == "content_block_start" and self._is_call(data["content_block"]):
                            start_input = data["content_block"].get("input") or {}
                            round_.call = {
                                "id": data["content_block"]["id"],
                                "index": index,
                                # a backend may give the whole input at the start, no deltas
                                "json": [json.dumps(start_input)] if start_input else [],
                            }
                        if round_.call is not None and index == round_.call["index"]:
                            if name == "content_block_delta":
                                round_.call["json"].append(data["delta"].get("partial_json", ""))
                            continue
                        if name == "content_block_start":
                            local[index] = next_index
                            next_index += 1
                        if (
                            name == "content_block_delta"
                            and data["delta"].get("type") == "text_delta"
                        ):
                            round_.texts.setdefault(index, []).append(data["delta"]["text"])
                        out.append((name, {**data, "index": local[index]}))
                    elif name == "message_delta":
                        round_.delta = data
                    elif name != "message_stop":
                        out.append((name, data))
                if out:
                    yield out
            final_usage = (round_.delta or {}).get("usage") or {}
            usage["input_tokens"] += int(final_usage.get("input_tokens") or round_.input_tokens)
            usage["output_tokens"] += int(final_usage.get("output_tokens") or 0)
            stop = ((round_.delta or {}).get("delta") or {}).get("stop_reason")
            if round_.call is None or stop != "tool_use":
                yield self._finish(round_.delta, usage)
                return
            query, hits = await self._run(round_.call)
            tool_id = websearch.server_tool_id()
            yield websearch.use_events(next_index, tool_id, query) + websearch.result_events(
                next_index + 1, tool_id, hits
            )
            next_index += 2
            req = websearch.next_round(
                req,
                ["".join(parts) for parts in round_.texts.values()],
                round_.call["id"],
                query,
                websearch.result_text(query, hits),
                may_search_again=self._spec.max_uses is None or self.searches < self._spec.max_uses,
            )
            await self._current.close("ok")
            self._current = await self._open_round(req, self.trace)

    def _is_call(self, block: dict[str, Any]) -> bool:
        return block.get("type") == "tool_use" and block.get("name") == self._spec.name

    async def _run(self, call: dict[str, Any]) -> tuple[str, list[websearch.Hit] | str]:
        try:
            query = json.loads("".join(call["json"]) or "{}").get("query")
        except (ValueError, AttributeError):
            query = None
        problem = websearch.query_problem(query)
        if problem:
            return str(query or ""), problem
        assert isinstance(query, str)
        if self._spec.max_uses is not None and self.searches >= self._spec.max_uses:
            return query, "max_uses_exceeded"
        self.searches += 1
        provider = self._settings.web_search_provider
        span = self.trace.child("web_search", attributes={"ccgate.search.provider": provider})
        try:
            found = await search(self._client, self._settings, query)
            if isinstance(found, str):
                span.set_attribute("error.type", found)
                return query, found
            hits = [h for h in found if websearch.allowed(h.url, self._spec)]
            span.set_attribute("ccgate.search.results", len(hits))
            return query, hits
        finally:
            span.end()

    def _finish(self, delta: dict[str, Any] | None, usage: dict[str, int]) -> list[Event]:
        delta = delta or {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        }
        total = {
            **(delta.get("usage") or {}),
            **usage,
            "server_tool_use": {"web_search_requests": self.searches},
        }
        return [
            ("message_delta", {**delta, "usage": total}),
            ("message_stop", {"type": "message_stop"}),
        ]
