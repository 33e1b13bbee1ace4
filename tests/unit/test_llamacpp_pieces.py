"""The llama.cpp-specific pure pieces: /props reading, forced tool_choice, counting without
the tool schemas a chat template drops."""

from __future__ import annotations

import asyncio

import pytest

from ccgate.edge.context.gate import ContextGate
from ccgate.edge.context.probes import Reading, probe_for
from ccgate.edge.llamacpp import describe, parse_props, server_root
from ccgate.edge.providers.table import PROVIDERS, configure
from ccgate.edge.routing import Route, Router
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.request import to_openai
from ccgate.edge.translate.target import Target
from ccgate.edge.translate.tokens import count_tokens
from ccgate.shared.settings import Settings

TOOLS = [
    {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {}}}},
    {"name": "search", "description": "Search the web " * 40, "input_schema": {"type": "object"}},
]
FORCED = {
    "model": "m",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "weather in Paris?"}],
    "tools": TOOLS,
    "tool_choice": {"type": "tool", "name": "get_weather"},
}


def test_forced_tool_on_llamacpp_is_required_with_only_that_tool() -> None:
    body, _ = to_openai(FORCED, Target("llamacpp", "m", PROVIDERS["llamacpp"].quirks))
    assert body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]


def test_forced_tool_elsewhere_names_the_function() -> None:
    body, _ = to_openai(FORCED, Target("vllm", "m", PROVIDERS["openrouter"].quirks))
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert len(body["tools"]) == 2


def test_count_without_rendered_tools_leaves_the_schemas_out() -> None:
    without = count_tokens(FORCED, tools_rendered=False)
    assert without < count_tokens(FORCED)
    assert without == count_tokens({k: v for k, v in FORCED.items() if k != "tools"})


def test_props_parsing() -> None:
    body = {
        "default_generation_settings": {"n_ctx": 4096},
        "total_slots": 2,
        "model_alias": "qwen",
        "build_info": "b1-abc",
        "chat_template_caps": {"supports_tools": True, "supports_tool_calls": True},
    }
    props = parse_props(body)
    assert props is not None and props.n_ctx == 4096 and props.supports_tools
    assert describe(props)[0] is True
    silent = parse_props({**body, "chat_template_caps": {"supports_tools": False}})
    assert silent is not None and describe(silent)[0] is False
    assert "DOES NOT RENDER TOOLS" in describe(silent)[1]
    assert parse_props({"object": "list", "data": []}) is None
    assert parse_props([1, 2]) is None
    assert server_root("http://h:8080/v1/") == "http://h:8080"
    assert server_root("http://h:8080") == "http://h:8080"


def _llamacpp_gate(monkeypatch: pytest.MonkeyPatch) -> ContextGate:
    monkeypatch.setenv("MODEL", "llamacpp/m")
    monkeypatch.setenv("CONTEXT_USAGE_SCALING", "false")  # the numbers as the server counts
    settings = Settings.from_env(None)
    return ContextGate(settings, Router(settings))


def test_the_props_probe_says_when_the_template_drops_tools() -> None:
    probe = probe_for(configure("llamacpp", Settings.from_env(None)), "m")
    assert probe is not None and probe.url.endswith("/props")
    props = {"default_generation_settings": {"n_ctx": 2048}}
    assert probe.parse(props) == 2048
    assert probe.drops_tools({**props, "chat_template_caps": {"supports_tools": False}})
    assert not probe.drops_tools({**props, "chat_template_caps": {"supports_tools": True}})


def test_a_prompt_is_fitted_without_the_tools_a_llamacpp_template_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claude Code's tool schemas are most of its request; a llama-server whose template
    drops them must not have the request refused for their size."""
    gate = _llamacpp_gate(monkeypatch)
    route = Route("llamacpp", "m")
    many = [{**TOOLS[1], "name": f"tool{i}"} for i in range(40)]
    req = {**FORCED, "tools": many, "tool_choice": {"type": "auto"}}
    assert count_tokens(req, tools_rendered=False) < 1000 < count_tokens(req)
    resolved = gate.router.resolve("claude-sonnet-4-5")
    estimate = count_tokens(req)  # large enough that the gate counts
    gate.windows.learn(route, Reading(1000, "llama.cpp /props", drops_tools=True))
    assert asyncio.run(gate.fit(req, resolved, estimate)).routes == (route,)
    gate = _llamacpp_gate(monkeypatch)
    gate.windows.learn(route, Reading(1000, "llama.cpp /props", drops_tools=False))
    with pytest.raises(ApiError, match=r"prompt is too long: \d+ tokens > 1000 maximum"):
        asyncio.run(gate.fit(req, resolved, estimate))
