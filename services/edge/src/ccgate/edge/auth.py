"""Who is calling: team keys (`CCGATE_API_KEYS`) checked in constant time, and the identity the
limiter and traces use. Keys are kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from ccgate.edge.translate.errors import ApiError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class Authenticator:
    def __init__(self, keys: Mapping[str, str]) -> None:
        self._digests = [(name, _digest(key)) for name, key in keys.items() if key]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def identify(self, headers: Mapping[str, str]) -> str | None:
        """The key's name; None when auth is off. Raises 401 for a missing or wrong key."""
        if not self._digests:
            return None
        key = presented_key(headers)
        if key is None:
            raise ApiError(
                401,
                "authentication_error",
                "missing API key: set ANTHROPIC_API_KEY (x-api-key) or ANTHROPIC_AUTH_TOKEN "
                "to a key of this gateway",
            )
        digest = _digest(key)
        found = None
        for name, known in self._digests:  # no early exit: timing does not reveal which matched
            if hmac.compare_digest(digest, known):
                found = name
        if found is None:
            raise ApiError(401, "authentication_error", "invalid API key for this gateway")
        return found


def caller_identity(body: dict[str, Any], key_name: str | None, client_host: str | None) -> str:
    """The limiter's and the traces' user: key name, else Claude Code's device, else address."""
    if key_name:
        return key_name
    metadata = body.get("metadata")
    raw = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(raw, str) and raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw[:128]
        if isinstance(parsed, dict):
            for field in ("device_id", "session_id", "account_uuid"):
                value = parsed.get(field)
                if isinstance(value, str) and value:
                    return value[:128]
        return raw[:128]
    return client_host or "anonymous"


def session_id(body: dict[str, Any], headers: Mapping[str, str]) -> str | None:
    header = headers.get("x-claude-code-session-id")
    if header:
        return header[:128]
    metadata = body.get("metadata")
    raw = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(raw, str) and raw.startswith("{"):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        value = parsed.get("session_id") if isinstance(parsed, dict) else None
        return value[:128] if isinstance(value, str) and value else None
    return None
