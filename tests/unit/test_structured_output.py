"""Structured output: `output_config.format` becomes the backend's `response_format`, and a
backend without a JSON-schema mode refuses it clearly."""

from __future__ import annotations

import pytest

from ccgate.edge.providers.table import PROVIDERS
from ccgate.edge.translate.errors import ApiError
from ccgate.edge.translate.request import to_openai
from ccgate.edge.translate.target import Quirks, Target

TITLE_FORMAT = {
    "type": "json_schema",
    "schema": {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
        "additionalProperties": False,
    },
}


def test_output_config_format_becomes_response_format() -> None:
    req = {
        "model": "m",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "name this session"}],
        "output_config": {"effort": "low", "format": TITLE_FORMAT},
    }
    body, _ = to_openai(req, Target("openrouter", "x", Quirks(reasoning_control="openrouter")))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": TITLE_FORMAT["schema"], "strict": True},
    }
    plain, _ = to_openai({**req, "output_config": {"effort": "low"}}, Target("p", "x", Quirks()))
    assert "response_format" not in plain


def test_output_format_on_a_backend_without_json_schema_is_a_clear_400() -> None:
    req = {
        "model": "m",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"format": TITLE_FORMAT},
    }
    deepseek = PROVIDERS["deepseek"]
    with pytest.raises(ApiError) as info:
        to_openai(req, Target("deepseek", "deepseek-chat", deepseek.quirks))
    assert info.value.status == 400
    assert "deepseek has no JSON-schema output mode" in info.value.message
    with pytest.raises(ApiError) as bad:
        to_openai(
            {**req, "output_config": {"format": {"type": "regex"}}}, Target("p", "x", Quirks())
        )
    assert "only 'json_schema'" in bad.value.message
