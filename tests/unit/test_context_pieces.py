"""The pure parts of context windows and web search: parsers, scaling, fitting, domains."""

from __future__ import annotations

import pytest

from ccgate.edge.context.fit import fit_routes, scale_usage, usage_scale
from ccgate.edge.context.probes import _listed, ollama_window
from ccgate.edge.context.windows import Window
from ccgate.edge.routing import Route
from ccgate.edge.server_tools import websearch
from ccgate.edge.translate.errors import ApiError


def test_ollama_window_prefers_the_num_ctx_it_runs_at() -> None:
    show = {"parameters": "stop x\nnum_ctx 8192", "model_info": {"qwen2.context_length": 32768}}
    assert ollama_window(show) == 8192
    assert ollama_window({"model_info": {"llama.context_length": 131072}}) == 131072
    assert ollama_window({"parameters": "temperature 0.2"}) is None
    assert ollama_window([]) is None


def test_listed_windows_by_model_id() -> None:
    data = {
        "data": [
            {"id": "a", "context_length": 1000},
            {"id": "b", "top_provider": {"context_length": 500}, "context_length": 900},
        ]
    }
    assert _listed(data, "a", "top_provider", "context_length") == 1000
    assert _listed(data, "b", "top_provider", "context_length") == 500
    assert _listed(data, "c", "context_length") is None
    assert _listed({"data": "nonsense"}, "a", "context_length") is None


def test_scale_usage_scales_the_input_side_on_copies() -> None:
    start = {
        "type": "message_start",
        "message": {
            "usage": {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 4}
        },
    }
    delta = {"type": "message_delta", "usage": {"input_tokens": 10, "output_tokens": 7}}
    out = scale_usage([("message_start", start), ("message_delta", delta)], 3.0)
    assert out[0][1]["message"]["usage"] == {
        "input_tokens": 30,
        "output_tokens": 1,
        "cache_read_input_tokens": 12,
    }
    assert out[1][1]["usage"] == {"input_tokens": 30, "output_tokens": 7}
    assert start["message"]["usage"]["input_tokens"] == 10  # type: ignore[index]
    assert delta["usage"]["input_tokens"] == 10  # type: ignore[index]


def test_usage_scale() -> None:
    window = Window(32768, "MODEL_CONTEXT_WINDOW")
    assert usage_scale(window, 1_000_000, 0.8, True) == pytest.approx(1_000_000 / (32768 * 0.8))
    assert usage_scale(window, 1_000_000, 0.8, False) == 1.0
    assert usage_scale(None, 1_000_000, 0.8, True) == 1.0
    assert usage_scale(Window(2_000_000, "x"), 1_000_000, 0.8, True) == 1.0  # never below 1


def test_fit_skips_a_chain_entry_too_small_for_the_prompt() -> None:
    small, big, unknown = Route("ollama", "s"), Route("openrouter", "b"), Route("lmstudio", "u")
    windows = {small: Window(4000, "x"), big: Window(100_000, "y")}
    fit = fit_routes((small, big, unknown), windows.get, 8000, (), windows.get, lambda w: 1.0)
    assert fit.routes == (big, unknown)
    with pytest.raises(ApiError) as caught:
        fit_routes((small,), windows.get, 8000, (), windows.get, lambda w: 2.0)
    assert caught.value.message == "prompt is too long: 16000 tokens > 8000 maximum"


def test_domains() -> None:
    spec = websearch.WebSearchSpec("web_search", None, ("example.com",), ("bad.example.com",))
    assert websearch.allowed("https://www.example.com/a", spec)
    assert websearch.allowed("https://docs.example.com/a", spec)
    assert not websearch.allowed("https://bad.example.com/a", spec)
    assert not websearch.allowed("https://example.org/a", spec)
    assert not websearch.allowed("https://notexample.com/a", spec)


def test_query_problems_use_anthropics_codes() -> None:
    assert websearch.query_problem("") == "invalid_tool_input"
    assert websearch.query_problem(None) == "invalid_tool_input"
    assert websearch.query_problem("x" * 401) == "query_too_long"
    assert websearch.query_problem("ok") is None


def test_next_round_stops_forcing_and_drops_a_spent_tool() -> None:
    req = {
        "messages": [{"role": "user", "content": "q"}],
        "tools": [{"name": "web_search"}],
        "tool_choice": {"type": "tool", "name": "web_search"},
    }
    again = websearch.next_round(req, ["thinking aloud"], "call_1", "q", "results", True)
    assert again["tool_choice"] == {"type": "auto"} and again["tools"] == req["tools"]
    assert again["messages"][-2]["content"][0] == {"type": "text", "text": "thinking aloud"}
    assert again["messages"][-1]["content"][0]["tool_use_id"] == "call_1"
    spent = websearch.next_round(req, [], "call_1", "q", "results", False)
    assert "tools" not in spent and "tool_choice" not in spent


def test_ollama_is_sent_a_configured_window_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from ccgate.edge.context.gate import ContextGate
    from ccgate.edge.routing import Router
    from ccgate.shared.settings import Settings

    monkeypatch.setenv("MODEL", "ollama/qwen3:8b")
    settings = Settings.from_env(None)
    gate = ContextGate(settings, Router(settings))
    route = Route("ollama", "qwen3:8b")
    gate.windows.learn(route, (131072, "ollama /api/show"))
    assert gate.window(route) == Window(131072, "ollama /api/show")
    assert gate.backend_fields(route) == {}  # the trained length is not forced on the server
    monkeypatch.setenv("MODEL_CONTEXT_WINDOW", "16384")
    settings = Settings.from_env(None)
    gate = ContextGate(settings, Router(settings))
    assert gate.backend_fields(route) == {"options": {"num_ctx": 16384}}
