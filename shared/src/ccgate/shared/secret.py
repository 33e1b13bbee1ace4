"""A string that does not show itself: provider keys, user keys and bot tokens in settings."""

from __future__ import annotations

from typing import Any

MASK = "**********"


class SecretStr:
    """Holds a secret; `str()`/`repr()` (logs, tracebacks, f-strings) show only a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"SecretStr('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)
