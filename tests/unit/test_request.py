"""Anthropic → OpenAI request translation, on Claude Code's real request shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.request import to_openai
from ccgate.edge.translate.target import Quirks, Target
from ccgate.edge.translate.validate import check_messages_request

FIXTURES = Path(__file__).parent.parent / "fixtures"


def capture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())["body"]


def target(**quirks: Any) -> Target:
    return Target("openai_compat", "backend-model", Quirks(**quirks))


def test_claude_code_main_loop_request_translates() -> None:
    req = check_messages_request(capture("main_loop_first_request.json"))
    body, warnings = to_openai(req, target(reasoning_control="reasoning_effort"))
    assert body["model"] == "backend-model"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    system = body["messages"][0]
    assert system["role"] == "system"
    assert "x-anthropic-billing-header" not in system["content"]
    assert "Claude Agent SDK" in system["content"]
    # role:"system" inside messages travels as a reminder in the user turn, never mid-list.
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "<system-reminder>" in body["messages"][1]["content"]
    names = {t["function"]["name"] for t in body["tools"]}
    assert {"Bash", "Read", "Edit"} <= names
    assert all("cache_control" not in json.dumps(m) for m in body["messages"])
    assert body["reasoning_effort"] == "high"  # output_config.effort
    assert body["user"].startswith("{")
    assert warnings == []


def test_tool_result_followup_keeps_order_and_ids() -> None:
    req = check_messages_request(capture("tool_result_followup_request.json"))
    body, _ = to_openai(req, target())
    roles = [m["role"] for m in body["messages"]]
    assistant = next(i for i, m in enumerate(body["messages"]) if m["role"] == "assistant")
    call = body["messages"][assistant]["tool_calls"][0]
    assert roles[assistant + 1] == "tool"
    assert body["messages"][assistant + 1]["tool_call_id"] == call["id"]
    assert json.loads(call["function"]["arguments"])


def test_failed_tool_result_is_visible_to_the_model() -> None:
    req = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "run it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "false"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "Exit code 1",
                        "is_error": True,
                    }
                ],
            },
        ],
    }
    body, _ = to_openai(req, target())
    tool = body["messages"][-1]
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "[tool error] Exit code 1"}


def test_images_documents_and_tool_result_blocks() -> None:
    req = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.invalid/a.png"},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc body"},
                        "title": "T",
                    },
                    {"type": "text", "text": "describe"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "text", "text": "file text"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/jpeg",
                                    "data": "BBBB",
                                },
                            },
                        ],
                    }
                ],
            },
        ],
    }
    body, _ = to_openai(req, target())
    parts = body["messages"][0]["content"]
    assert parts[0]["image_url"]["url"] == "data:image/png;base64,AAAA"
    assert parts[1]["image_url"]["url"] == "https://example.invalid/a.png"
    assert "doc body" in parts[2]["text"]
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "file text"}
    assert body["messages"][3]["content"][1]["image_url"]["url"].startswith("data:image/jpeg")


def test_pdf_document_is_a_clear_400() -> None:
    req = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBE",
                        },
                    }
                ],
            }
        ],
    }
    with pytest.raises(ApiError) as info:
        to_openai(req, target())
    assert info.value.status == 400 and "application/pdf" in info.value.message


def test_tools_choice_params_and_server_tools() -> None:
    req = {
        "model": "m",
        "max_tokens": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {"name": "Bash", "input_schema": {"$schema": "x", "type": "object", "properties": {}}},
            {"type": "web_search_20250305", "name": "web_search"},
            {"name": "Deferred", "input_schema": {"type": "object"}, "defer_loading": True},
        ],
        "tool_choice": {"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
    }
    body, warnings = to_openai(req, target(supports_top_k=False, max_tokens_cap=50))
    assert [t["function"]["name"] for t in body["tools"]] == ["Bash"]
    assert "$schema" not in body["tools"][0]["function"]["parameters"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Bash"}}
    assert body["parallel_tool_calls"] is False
    assert body["max_tokens"] == 50 and body["temperature"] == 0.2 and body["top_p"] == 0.9
    assert "top_k" not in body and body["stop"] == ["END"]
    assert len(warnings) == 1 and "web_search" in warnings[0]


@pytest.mark.parametrize(
    ("choice", "expected"), [({"type": "auto"}, "auto"), ({"type": "any"}, "required")]
)
def test_tool_choice_mapping(choice: dict[str, Any], expected: str) -> None:
    req = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "A", "input_schema": {"type": "object"}}],
        "tool_choice": choice,
    }
    assert to_openai(req, target())[0]["tool_choice"] == expected


def test_thinking_round_trip_rules() -> None:
    history = {
        "model": "m",
        "max_tokens": 5,
        "thinking": {"type": "enabled", "budget_tokens": 20000},
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "pondering", "signature": ""},
                    {"type": "text", "text": "a"},
                ],
            },
            {"role": "user", "content": "q2"},
        ],
    }
    deepseek, _ = to_openai(history, target(reasoning_history="reasoning_content"))
    assert deepseek["messages"][1]["reasoning_content"] == "pondering"
    other, _ = to_openai(history, target(reasoning_control="openrouter"))
    assert "reasoning_content" not in other["messages"][1]
    assert other["reasoning"] == {"effort": "high"}
    tier_off = Target(
        "p", "m", Quirks(reasoning_control="chat_template_kwargs"), thinking_allowed=False
    )
    assert to_openai(history, tier_off)[0]["chat_template_kwargs"] == {
        "thinking": False,
        "enable_thinking": False,
    }


def test_consecutive_same_role_messages_are_merged() -> None:
    req = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": "d"},
        ],
    }
    body, _ = to_openai(req, target())
    assert body["messages"] == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "cd"},
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "model"),
        ({"model": "m", "messages": []}, "max_tokens"),
        ({"model": "m", "max_tokens": 0, "messages": []}, "max_tokens"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]},
            "messages.0.role",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]},
            "messages.0.content",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_result"}]}],
            },
            "tool_use_id",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "temperature": "hot",
            },
            "temperature",
        ),
    ],
)
def test_malformed_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as info:
        check_messages_request(body)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    assert field in info.value.message


def test_unknown_fields_and_blocks_pass() -> None:
    req = {
        "model": "m",
        "max_tokens": 5,
        "brand_new_field": {"x": 1},
        "context_management": {},
        "messages": [
            {
                "role": "user",
                "content": [{"type": "future_block", "x": 1}, {"type": "text", "text": "hi"}],
            }
        ],
    }
    body, _ = to_openai(check_messages_request(req), target())
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_nested_blocks_in_tool_results_are_checked() -> None:
    bad = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "image", "source": True}],
                    }
                ],
            }
        ],
    }
    with pytest.raises(ApiError) as info:
        check_messages_request(bad)
    assert "messages.0.content.0.content.0.source" in info.value.message
