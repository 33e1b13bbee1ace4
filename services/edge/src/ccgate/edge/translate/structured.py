"""Structured output: Anthropic `output_config.format` (JSON schema) → OpenAI `response_format`.

Claude Code asks for a JSON-schema answer on some side requests (the session title). A backend
that has no JSON-schema mode gets no silent downgrade: the client hears why, as a 400.
"""

from __future__ import annotations

from typing import Any

from ccgate.edge.translate.errors import invalid_request
from ccgate.edge.translate.target import Target


def requested_format(req: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(field name, format) of the requested output format, if any: `output_config.format`,
    or the older beta's top-level `output_format`."""
    config = req.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is not None:
        where = "output_config.format"
    else:
        fmt, where = req.get("output_format"), "output_format"
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise invalid_request(f"{where}: must be an object like {{'type': 'json_schema', ...}}")
    return where, fmt


def response_format(req: dict[str, Any], target: Target) -> dict[str, Any] | None:
    """The OpenAI `response_format` for the request, None when none was asked for."""
    found = requested_format(req)
    if found is None:
        return None
    where, fmt = found
    if fmt.get("type") != "json_schema":
        raise invalid_request(
            f"{where}.type: only 'json_schema' is supported, got {fmt.get('type')!r}"
        )
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise invalid_request(f"{where}.schema: a JSON schema object is required")
    if not target.quirks.supports_json_schema:
        raise invalid_request(
            f"{where}: {target.provider} has no JSON-schema output mode (OpenAI "
            "response_format json_schema), so this request cannot be answered as asked; route "
            "the model to a provider that has one, or send the request without "
            f"{where}"
        )
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
