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


def messages_operation() -> dict[str, Any]:
    return {
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": MESSAGES_REQUEST}},
            }
        },
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


def count_tokens_operation() -> dict[str, Any]:
    return {
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": COUNT_TOKENS_REQUEST}},
            }
        },
        "responses": {
            "200": {
                "description": "An estimate of the input tokens",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["input_tokens"],
                            "properties": {"input_tokens": {"type": "integer"}},
                        }
                    }
                },
            },
            **_errors(400, 401, 408, 413),
        },
    }
