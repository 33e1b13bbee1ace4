"""Fitting one request to its model's window — pure decisions, no I/O.

- A prompt larger than every window of its chain goes to `MODEL_LONG_CONTEXT` when that is
  set; otherwise it gets Anthropic's own 400, `prompt is too long: N tokens > M maximum`,
  on which Claude Code compacts the conversation and retries (measured with 2.1.332).
- Claude Code decides when to auto-compact from the `usage` we report, against the window it
  assumes (2.1.332: 1M tokens for its default models and for an id it does not know, such as
  our discovery ids; it compacts 33K short of that). With CONTEXT_USAGE_SCALING on, every input-side usage number the client sees is
  multiplied by `assumed / (window × CONTEXT_COMPACT_AT)`, so its "% of context used" is the
  backend's real fill and its compaction fires at CONTEXT_COMPACT_AT of the backend's window.
  Output tokens are not scaled; the usage the gateway records (and bills) stays the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ccgate.edge.context.windows import Window
from ccgate.edge.routing import Route
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.stream import Event

INPUT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def prompt_too_long(tokens: int, maximum: int) -> ApiError:
    # Claude Code matches this exact sentence (and reads both numbers) to compact and retry.
    return ApiError(
        400, "invalid_request_error", f"prompt is too long: {tokens} tokens > {maximum} maximum"
    )


def usage_scale(window: Window | None, assumed: int, compact_at: float, enabled: bool) -> float:
    """The factor for reported input usage; 1.0 when off, unknown, or the backend is larger."""
    if not enabled or window is None:
        return 1.0
    return max(1.0, assumed / (window.tokens * compact_at))


def _scaled(usage: Any, factor: float) -> Any:
    if not isinstance(usage, dict):
        return usage
    out = dict(usage)
    for name in INPUT_FIELDS:
        value = out.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            out[name] = round(value * factor)
    return out


def scale_usage(events: list[Event], factor: float) -> list[Event]:
    """`events` with the input side of `message_start` / `message_delta` usage scaled (copies;
    the originals, from which the gateway records real usage, are left alone)."""
    if factor == 1.0:
        return events
    out: list[Event] = []
    for name, data in events:
        if name == "message_start" and isinstance(data.get("message"), dict):
            message = data["message"]
            data = {**data, "message": {**message, "usage": _scaled(message.get("usage"), factor)}}
        elif name == "message_delta" and "usage" in data:
            data = {**data, "usage": _scaled(data["usage"], factor)}
        out.append((name, data))
    return out


@dataclass(frozen=True)
class Fit:
    """The routes that can take this prompt, and each one's usage factor."""

    routes: tuple[Route, ...]
    scales: dict[Route, float] = field(default_factory=dict)

    def scale(self, route: Route) -> float:
        return self.scales.get(route, 1.0)


def fit_routes(
    routes: tuple[Route, ...],
    window_of: Callable[[Route], Window | None],
    tokens: int,
    long_context: tuple[Route, ...],
    long_window_of: Callable[[Route], Window | None],
    scale_of: Callable[[Window | None], float],
) -> Fit:
    """Routes whose window holds `tokens` (an unknown window is assumed to); else the long-
    context chain; else the 400 Claude Code compacts on, in the units its usage was reported."""
    windows = {r: window_of(r) for r in routes}
    fitting = [r for r, w in windows.items() if w is None or tokens <= w.tokens]
    if not fitting and long_context:
        windows = {r: long_window_of(r) for r in long_context}
        fitting = [r for r, w in windows.items() if w is None or tokens <= w.tokens]
    if not fitting:
        widest = max((w for w in windows.values() if w is not None), key=lambda w: w.tokens)
        factor = scale_of(widest)
        raise prompt_too_long(round(tokens * factor), round(widest.tokens * factor))
    return Fit(tuple(fitting), {r: scale_of(windows[r]) for r in fitting})
