"""The request and response shapes the edge publishes in /openapi.json — the Anthropic Messages
API as this gateway accepts it. The routes read raw JSON (validation and translation are the
pure functions in `translate/`); these schemas describe that contract for clients and fuzzers."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

_TEXT = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"const": "text"},
        "text": {"type": "string"},
        "cache_control": {"type": "object"},
    },
}
_IMAGE = {
    "type": "object",
    "required": ["type", "source"],
    "properties": {
        "type": {"const": "image"},
        "source": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["type", "media_type", "data"],
                    "properties": {
                        "type": {"const": "base64"},
                        "media_type": {
                            "enum": ["image/jpeg", "image/png", "image/gif", "image/webp"]
                        },
                        "data": {"type": "string"},
                    },
                },
                {
                    "type": "object",
                    "required": ["type", "url"],
                    "properties": {"type": {"const": "url"}, "url": {"type": "string"}},
                },
            ]
        },
    },
}
_DOCUMENT = {
    "type": "object",
    "required": ["type", "source"],
    "properties": {
        "type": {"const": "document"},
        "title": {"type": "string"},
        "source": {
            "type": "object",
            "required": ["type", "media_type", "data"],
            "properties": {
                "type": {"const": "text"},
                "media_type": {"const": "text/plain"},
                "data": {"type": "string"},
            },
        },
    },
}
_TOOL_USE = {
    "type": "object",
    "required": ["type", "id", "name", "input"],
    "properties": {
        "type": {"const": "tool_use"},
        "id": {"type": "string", "pattern": "^[a-zA-Z0-9_-]+$"},
        "name": {"type": "string"},
        "input": {"type": "object"},
    },
}
_TOOL_RESULT = {
    "type": "object",
    "required": ["type", "tool_use_id"],
    "properties": {
        "type": {"const": "tool_result"},
        "tool_use_id": {"type": "string"},
        "is_error": {"type": "boolean"},
        "content": {
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"oneOf": [_TEXT, _IMAGE]}}]
        },
    },
}
_THINKING = {
    "type": "object",
    "required": ["type", "thinking"],
    "properties": {
        "type": {"const": "thinking"},
        "thinking": {"type": "string"},
        "signature": {"type": "string"},
    },
}

_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["user", "assistant"]},
        "content": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "oneOf": [_TEXT, _IMAGE, _DOCUMENT, _TOOL_USE, _TOOL_RESULT, _THINKING]
                    },
                },
            ]
        },
    },
}
_TOOL = {
    "type": "object",
    "required": ["name", "input_schema"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
        "description": {"type": "string"},
        "input_schema": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"const": "object"}},
        },
    },
}

_COMMON = {
    "model": {"type": "string", "minLength": 1},
    "messages": {"type": "array", "minItems": 1, "maxItems": 10000, "items": _MESSAGE},
    "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": _TEXT}]},
    "tools": {"type": "array", "maxItems": 1000, "items": _TOOL},
    "tool_choice": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["auto", "any", "tool", "none"]},
            "name": {"type": "string"},
            "disable_parallel_tool_use": {"type": "boolean"},
        },
    },
    "thinking": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["enabled", "disabled", "adaptive"]},
            "budget_tokens": {"type": "integer", "minimum": 1024},
        },
    },
}

MESSAGES_REQUEST: JSON = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        **_COMMON,
        "max_tokens": {"type": "integer", "minimum": 1},
        "stream": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 0},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "object", "properties": {"user_id": {"type": "string"}}},
    },
}

COUNT_TOKENS_REQUEST: JSON = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": _COMMON,
}

ERROR: JSON = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}

MESSAGE: JSON = {
    "type": "object",
    "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": {"type": "string"},
        "content": {"type": "array", "items": {"type": "object"}},
        "stop_reason": {"type": ["string", "null"]},
        "stop_sequence": {"type": ["string", "null"]},
        "usage": {"type": "object", "required": ["input_tokens", "output_tokens"]},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "Anthropic-shaped error",
            "content": {"application/json": {"schema": ERROR}},
        }
        for code in codes
    }


def _json_response(
    description: str, schema: JSON | None = None, media_type: str = "application/json"
) -> JSON:
    return {"description": description, "content": {media_type: {"schema": schema or {}}}}


def _json_body(schema: JSON) -> JSON:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query(*names: str) -> list[JSON]:
    return [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in names
    ]


MESSAGES_OPERATION: JSON = {
    "summary": "Create a message",
    "operationId": "messages",
    "requestBody": _json_body(MESSAGES_REQUEST),
    "responses": {
        "200": {
            "description": "A message (JSON), or its events (text/event-stream) with stream: true",
            "content": {
                "application/json": {"schema": MESSAGE},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        },
        **_errors(400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 529),
    },
}

COUNT_TOKENS_OPERATION: JSON = {
    "summary": "Count the input tokens of a message request",
    "operationId": "count_tokens",
    "requestBody": _json_body(COUNT_TOKENS_REQUEST),
    "responses": {
        "200": _json_response(
            "An estimate of the input tokens",
            {
                "type": "object",
                "required": ["input_tokens"],
                "properties": {"input_tokens": {"type": "integer"}},
            },
        ),
        **_errors(400, 401, 408, 413),
    },
}

_JSON, _TEXT_PLAIN, _HTML = "application/json", "text/plain", "text/html"
# GET routes: (path, summary, media type, query parameters, error codes)
_READS: tuple[tuple[str, str, str, tuple[str, ...], tuple[int, ...]], ...] = (
    ("/v1/models", "The models this gateway routes", _JSON, (), (401,)),
    ("/healthz", "Liveness", _JSON, (), ()),
    ("/readyz", "Readiness: the limiter and each backend", _JSON, (), ()),
    ("/metrics", "Prometheus metrics", _TEXT_PLAIN, (), ()),
    ("/ccgate/usage", "Usage per key and day", _JSON, ("key", "since"), (400, 401, 403)),
    ("/ccgate/", "The operator's status page", _HTML, (), (401, 403)),
    ("/v1/ccgate/statusline", "Claude Code's status line", _JSON, ("model", "session"), (401,)),
    ("/ccgate/limiter", "The limiter's state per provider", _JSON, (), (401,)),
)


def document(title: str, version: str) -> JSON:
    """The whole /openapi.json."""
    paths: JSON = {
        "/v1/messages": {"post": MESSAGES_OPERATION},
        "/v1/messages/count_tokens": {"post": COUNT_TOKENS_OPERATION},
    }
    for path, summary, media_type, params, codes in _READS:
        operation: JSON = {
            "summary": summary,
            "operationId": path.strip("/").replace("/", "_"),
            "responses": {"200": _json_response("OK", None, media_type), **_errors(*codes)},
        }
        if params:
            operation["parameters"] = _query(*params)
        paths[path] = {"get": operation}
    return {"openapi": "3.1.0", "info": {"title": title, "version": version}, "paths": paths}
