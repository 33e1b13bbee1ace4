"""The llama.cpp-specific pure pieces: /props reading, forced tool_choice, counting without
the tool schemas a chat template drops."""

from __future__ import annotations

from ccgate.edge.llamacpp import describe, parse_props, server_root
from ccgate.edge.providers.table import PROVIDERS
from ccgate.edge.translate.request import to_openai
from ccgate.edge.translate.target import Target
from ccgate.edge.translate.tokens import count_tokens

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
