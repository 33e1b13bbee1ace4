"""Reading a model's context window from the backend that serves it, where the backend says.

Each provider with a documented answer has a probe: one HTTP request and a pure parser of its
JSON. The probes run at start-up (async, in the edge) and in `ccgate doctor` (sync); a backend
that does not answer in time just leaves the window unknown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp

from ccgate.edge import side_http
from ccgate.edge.llamacpp import parse_props, server_root
from ccgate.edge.providers.table import Provider

PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class WindowProbe:
    method: str
    url: str
    parse: Callable[[Any], int | None]
    json: dict[str, Any] | None = None
    source: str = ""
    # The backend leaves tool schemas out of the prompt (a llama.cpp chat template that cannot
    # render them): a request's size is then counted without them.
    drops_tools: Callable[[Any], bool] = lambda _: False


class Reading(NamedTuple):
    tokens: int
    source: str
    drops_tools: bool = False


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def ollama_window(show: Any) -> int | None:
    """`POST /api/show`: a `num_ctx` the model was created with wins (that is what Ollama runs
    it at); else the model's own trained length, `<arch>.context_length` in `model_info`."""
    if not isinstance(show, dict):
        return None
    parameters = show.get("parameters")
    if isinstance(parameters, str):
        found = re.search(r"^\s*num_ctx\s+(\d+)", parameters, re.MULTILINE)
        if found:
            return int(found.group(1))
    info = show.get("model_info")
    if isinstance(info, dict):
        for key, value in info.items():
            if key.endswith(".context_length") and _positive(value):
                return int(value)
    return None


def _listed(data: Any, model: str, *fields: str) -> int | None:
    """The first of `fields` set on the entry of `model` in an OpenAI-style `{"data": [...]}`."""
    entries = data.get("data") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            for name in fields:
                value = entry.get(name)
                if isinstance(value, dict):  # OpenRouter's top_provider.context_length
                    value = value.get("context_length")
                found = _positive(value)
                if found:
                    return found
    return None


def _ollama(provider: Provider, model: str) -> WindowProbe:
    return WindowProbe(
        "POST",
        f"{server_root(provider.base_url)}/api/show",
        ollama_window,
        {"model": model},
        "ollama /api/show",
    )


@dataclass(frozen=True)
class ModelListProbe:
    """A GET of an OpenAI-style model list: the window is the first of `fields` set on the
    entry of the model."""

    name: str  # the provider's, for the reading's source
    path: str
    fields: tuple[str, ...]
    at_server_root: bool  # the path hangs off the server's root, not off the base URL (…/v1)

    def __call__(self, provider: Provider, model: str) -> WindowProbe:
        base = (
            server_root(provider.base_url) if self.at_server_root else provider.base_url.rstrip("/")
        )
        return WindowProbe(
            "GET",
            f"{base}{self.path}",
            lambda data: _listed(data, model, *self.fields),
            source=f"{self.name} {self.path}",
        )


def _llamacpp(provider: Provider, model: str) -> WindowProbe:
    def n_ctx(data: Any) -> int | None:
        props = parse_props(data)
        return props.n_ctx if props else None

    def drops_tools(data: Any) -> bool:
        props = parse_props(data)
        return props is not None and not props.supports_tools

    return WindowProbe(
        "GET",
        server_root(provider.base_url) + "/props",
        n_ctx,
        source="llama.cpp /props",
        drops_tools=drops_tools,
    )


# provider id → probe
PROBES: dict[str, Callable[[Provider, str], WindowProbe]] = {
    "llamacpp": _llamacpp,
    "ollama": _ollama,
    # LM Studio's REST API: the loaded length is what it runs at; the maximum otherwise.
    "lmstudio": ModelListProbe(
        "lmstudio",
        "/api/v0/models",
        ("loaded_context_length", "max_context_length"),
        at_server_root=True,
    ),
    "openrouter": ModelListProbe(
        "openrouter", "/models", ("top_provider", "context_length"), at_server_root=False
    ),
}


def probe_for(provider: Provider, model: str) -> WindowProbe | None:
    """The probe for a usable provider (one still missing its key is not asked)."""
    make = PROBES.get(provider.id)
    return make(provider, model) if make and provider.missing() is None else None


def _parse(probe: WindowProbe, answer: side_http.Answer) -> Reading | None:
    if answer.status != 200:
        return None
    try:
        data = answer.json()
        tokens = probe.parse(data)
    except ValueError:
        return None
    return Reading(tokens, probe.source, probe.drops_tools(data)) if tokens else None


def _asked(probe: WindowProbe, provider: Provider) -> dict[str, Any]:
    """What a probe sends, the same from the server and from the CLI."""
    return {"json": probe.json, "headers": provider.auth_headers(), "seconds": PROBE_TIMEOUT}


async def read_window(
    client: aiohttp.ClientSession, provider: Provider, model: str
) -> Reading | None:
    probe = probe_for(provider, model)
    if probe is None:
        return None
    try:
        answer = await side_http.call(client, probe.method, probe.url, **_asked(probe, provider))
    except side_http.CallFailed:
        return None
    return _parse(probe, answer)


def read_window_sync(provider: Provider, model: str) -> Reading | None:
    probe = probe_for(provider, model)
    if probe is None:
        return None
    try:
        answer = side_http.call_sync(probe.method, probe.url, **_asked(probe, provider))
    except side_http.CallFailed:
        return None
    return _parse(probe, answer)
