"""What a llama.cpp `llama-server` says about itself (`GET /props`): its context and whether
the loaded model's chat template can show tools to the model.

llama-server renders tools only through the model's chat template; a template without tool
support leaves them out of the prompt, so Claude Code's model can never call one. `doctor` and
the start-up report say so loudly, and the context size is the window a request must fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from ccgate.edge import side_http
from ccgate.edge.providers.table import configure
from ccgate.edge.routing import Router
from ccgate.edge.translate.request import to_openai
from ccgate.edge.translate.target import Target
from ccgate.shared.settings import Settings

if TYPE_CHECKING:  # the gateway's context probes import this module
    from ccgate.edge.gateway import Gateway


@dataclass(frozen=True)
class LlamaCppProps:
    n_ctx: int  # per slot: what one request can use
    supports_tools: bool  # the template renders the `tools` list into the prompt
    supports_tool_calls: bool  # the template renders assistant tool calls in the history
    model: str
    build: str
    total_slots: int


def server_root(base_url: str) -> str:
    """A base URL without its /v1: llama.cpp's /props, Ollama's and LM Studio's own APIs live
    at the server's root."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def parse_props(data: Any) -> LlamaCppProps | None:
    """The reading of a /props body, or None when it is not llama-server's."""
    if not isinstance(data, dict):
        return None
    settings = data.get("default_generation_settings")
    caps = data.get("chat_template_caps")
    if not isinstance(settings, dict) or not isinstance(settings.get("n_ctx"), int):
        return None
    caps = caps if isinstance(caps, dict) else {}
    return LlamaCppProps(
        n_ctx=settings["n_ctx"],
        supports_tools=bool(caps.get("supports_tools")),
        supports_tool_calls=bool(caps.get("supports_tool_calls")),
        model=str(data.get("model_alias") or data.get("model_path") or ""),
        build=str(data.get("build_info") or ""),
        total_slots=int(data.get("total_slots") or 1),
    )


def read_props(base_url: str, timeout: float = 5.0) -> LlamaCppProps | None:
    """GET /props of the server behind `base_url`; None when it is not a llama-server."""
    try:
        answer = side_http.call_sync("GET", server_root(base_url) + "/props", seconds=timeout)
    except side_http.CallFailed:
        return None
    if answer.status != 200:
        return None
    try:
        return parse_props(answer.json())
    except ValueError:
        return None


def describe(props: LlamaCppProps) -> tuple[bool, str]:
    """(fine, one line) for doctor and the start-up report."""
    head = f"llama.cpp server ({props.build or 'unknown build'}), model {props.model}: "
    head += f"context {props.n_ctx} tokens per slot ({props.total_slots} slot(s))"
    if props.supports_tools:
        return True, head + "; its chat template renders tools"
    return False, (
        head + "; ITS CHAT TEMPLATE DOES NOT RENDER TOOLS: llama-server drops them from the "
        "prompt, so the model can never call one of Claude Code's tools. Load a model whose "
        "template supports tools, or pass --chat-template-file to llama-server"
    )


def findings(settings: Settings) -> list[tuple[bool, str]]:
    """One (fine, line) per routed `llamacpp` provider: what its /props says, or that it
    did not answer as a llama-server."""
    if not any(r.provider == "llamacpp" for rs in Router(settings).table().values() for r in rs):
        return []
    provider = configure("llamacpp", settings)
    props = read_props(provider.base_url)
    if props is None:
        return [(False, f"llamacpp: no llama-server /props at {server_root(provider.base_url)}")]
    fine, line = describe(props)
    return [(fine, f"llamacpp: {line}")]


async def prompt_tokens(client: aiohttp.ClientSession, base_url: str, body: dict[str, Any]) -> int:
    """The prompt length llama-server will see for an OpenAI chat body: rendered by its own
    chat template (/apply-template: tools dropped there when the template cannot show them)
    and counted by its own tokenizer (/tokenize), as its completion endpoint does."""
    root = server_root(base_url)
    rendered = await side_http.call(
        client, "POST", root + "/apply-template", json=body, seconds=10.0
    )
    if rendered.status != 200:
        raise ValueError(f"/apply-template answered {rendered.status}")
    prompt = rendered.json()["prompt"]
    tokenized = await side_http.call(
        client,
        "POST",
        root + "/tokenize",
        json={"content": prompt, "add_special": True, "parse_special": True},
        seconds=10.0,
    )
    if tokenized.status != 200:
        raise ValueError(f"/tokenize answered {tokenized.status}")
    return len(tokenized.json()["tokens"])


async def count_on_backend(gateway: Gateway, req: dict[str, Any]) -> int | None:
    """`count_tokens` for a request routed to llama-server: what that server will count, or
    None when the first hop is another provider or the server cannot tell."""
    resolved = gateway.router.resolve(req["model"])
    route = resolved.routes[0]
    provider = gateway.providers[route.provider]
    if route.provider != "llamacpp" or provider.api_format != "openai":
        return None
    target = Target(route.provider, route.model, provider.spec.quirks, resolved.thinking_allowed)
    body, _ = to_openai(req, target)
    try:  # not the upstream pool: two small calls, off the hot path
        async with side_http.session() as client:
            return await prompt_tokens(client, provider.base_url, body)
    except (side_http.CallFailed, ValueError, KeyError, TypeError):
        return None
