"""Who is calling: team keys (`CCGATE_API_KEYS` and the key store) checked by digest, and the
identity the limiter and traces use."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ccgate.edge.keys import KeyRecord, KeyStore, digest
from ccgate.edge.translate.errors import ApiError


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
    """Static `CCGATE_API_KEYS` plus the key store's records, all held as digests."""

    def __init__(self, static: Mapping[str, str], store: KeyStore | None = None) -> None:
        self._static = {digest(k): KeyRecord(name, digest(k)) for name, k in static.items() if k}
        self._store = store
        self._stored: dict[str, KeyRecord] = {}

    def refresh(self) -> None:
        """Reload the store's records (called at start and every few seconds)."""
        if self._store is not None:
            self._stored = {r.digest: r for r in self._store.load()}

    @property
    def enabled(self) -> bool:
        return bool(self._static or self._stored)

    def identify(self, headers: Mapping[str, str]) -> KeyRecord | None:
        """The caller's key record; None when auth is off. Raises 401 for a missing or wrong key."""
        if not self.enabled:
            return None
        key = presented_key(headers)
        if key is None:
            raise ApiError(
                401,
                "authentication_error",
                "missing API key: set ANTHROPIC_API_KEY (x-api-key) or ANTHROPIC_AUTH_TOKEN "
                "to a key of this gateway",
            )
        presented = digest(key)
        record = self._static.get(presented) or self._stored.get(presented)
        # The lookup is by digest; the final comparison is constant-time all the same.
        if record is None or not hmac.compare_digest(presented, record.digest):
            raise ApiError(401, "authentication_error", "invalid API key for this gateway")
        return record


CHAT_USER_HEADER = "x-ccgate-chat-user"


def metadata_user(body: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """`metadata.user_id` as sent, and its fields when it is JSON (Claude Code sends a JSON
    string holding device_id, account_uuid and session_id)."""
    metadata = body.get("metadata")
    raw = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(raw, str) or not raw:
        return None, {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw, {}
    return raw, parsed if isinstance(parsed, dict) else {}


CHAT_USER_SEP = "@"  # "<key>@<chat user>": a bucket of a key that fans out per chat user
_UNSAFE_CHAT_USER = re.compile(r"[^A-Za-z0-9:._-]")


def chat_user_of(headers: Mapping[str, str] | None) -> str:
    """Who a bot run acts for, as a plain label (it ends up in usage rows and limiter keys)."""
    raw = (headers or {}).get(CHAT_USER_HEADER, "").strip()[:128]
    return _UNSAFE_CHAT_USER.sub("_", raw)


def caller_identity(
    body: dict[str, Any],
    key_name: str | None,
    client_host: str | None,
    headers: Mapping[str, str] | None = None,
    fan_out: bool = False,
) -> str:
    """The limiter's and the traces' user: the key's name (so its own limits hold, whatever
    else is sent) — per chat user (`<key>@<chat user>`) for a key that fans out — else who a
    bot run acts for (`x-ccgate-chat-user`), else Claude Code's device, else the address."""
    chat_user = chat_user_of(headers)
    if key_name:
        return f"{key_name}{CHAT_USER_SEP}{chat_user}" if fan_out and chat_user else key_name
    if chat_user:
        return f"chat/{chat_user}"
    raw, fields = metadata_user(body)
    if raw:
        for field in ("device_id", "session_id", "account_uuid"):
            value = fields.get(field)
            if isinstance(value, str) and value:
                return value[:128]
        return raw[:128]
    return client_host or "anonymous"


def session_id(body: dict[str, Any], headers: Mapping[str, str]) -> str | None:
    header = headers.get("x-claude-code-session-id")
    if header:
        return header[:128]
    value = metadata_user(body)[1].get("session_id")
    return value[:128] if isinstance(value, str) and value else None
