"""Settings from the environment over `.env`: names matched case-insensitively, strings converted
to each field's type by msgspec, and a bad value reported under the variable's own name.

Why not pydantic-settings: it brought ~14 MB and ~0.1 s into every worker for what is, here,
one conversion at start-up (bench/README.md, issue 17).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec
from dotenv import dotenv_values

from ccgate.shared.secret import SecretStr

T = TypeVar("T")

# What pydantic-settings (and so free-claude-code's .env files) accepted as booleans.
_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "f", "n"})


def environment(env_file: str | Path | None) -> dict[str, str]:
    """The process environment over `env_file` (when it exists), names upper-cased."""
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        merged.update({k.upper(): v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update({k.upper(): v for k, v in os.environ.items()})
    return merged


class _Kind(NamedTuple):
    is_bool: bool
    optional: bool
    secret: bool


def _field_types(cls: type[Any]) -> dict[str, _Kind]:
    """Field name → what its type says, from the dataclass's resolved annotations."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, _Kind] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue  # private fields are the loader's, not settings
        hint = hints[f.name]
        while typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out[f.name] = _Kind(bool in args, type(None) in args, SecretStr in args)
    return out


def _prepared(value: Any, is_bool: bool, optional: bool) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if optional and not text:
        return None  # `MODEL_OPUS=` in a .env means unset, not a model named ""
    if is_bool and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    return value


def _dec_hook(kind: type[Any], value: Any) -> Any:
    # msgspec turns a TypeError raised here into a ValidationError at the field's path.
    if kind is SecretStr and isinstance(value, str):
        return SecretStr(value)
    raise TypeError(f"Expected `str`, got `{type(value).__name__}`")


def load(cls: type[T], env: Mapping[str, str], overrides: Mapping[str, Any]) -> T:
    """An instance of the dataclass `cls`: each field from `overrides`, else the variable of its
    upper-cased name in `env`, else its default. Raises ValueError naming the variable."""
    fields = _field_types(cls)
    unknown = set(overrides) - set(fields)
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, (is_bool, optional, _) in fields.items():
        if name in overrides:
            value = overrides[name]
        elif name.upper() in env:
            value = env[name.upper()]
        else:
            continue
        values[name] = _prepared(value, is_bool, optional)
    try:
        return msgspec.convert(values, cls, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        secrets = {name for name, kind in fields.items() if kind.secret}
        raise ValueError(_named(str(exc), values, secrets)) from None


def _named(message: str, values: Mapping[str, Any], secrets: set[str]) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.provider_rate_limit`" as the variable's
    name and what it holds (never a secret's value)."""
    match = re.search(r" - at `\$\.(\w+)`", message)
    if not match:
        return message
    name = match.group(1)
    what = "" if name in secrets else f"={values.get(name)!r}"
    return f"{name.upper()}{what}: {message[: match.start()]}"
