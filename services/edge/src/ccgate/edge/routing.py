"""Model id → fallback chain of (provider, upstream model).

Claude model ids map by family (`*opus*` → MODEL_OPUS, `*sonnet*` → MODEL_SONNET, `*haiku*` →
MODEL_HAIKU, anything else → MODEL); a request may also name `provider/model` directly. A
comma list in a setting is a fallback chain, tried in order before the first byte. The ids
`GET /v1/models` lists (`claude-via-<provider>/<model>`, an id Claude Code's model picker keeps)
route to exactly that model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

from ccgate.edge.providers.table import ALIASES, PROVIDERS
from ccgate.edge.translate.errors import invalid_request
from ccgate.shared.settings import Settings

Tier = Literal["opus", "sonnet", "haiku", "default"]
TIERS: tuple[Tier, ...] = ("opus", "sonnet", "haiku", "default")
# Claude Code keeps only discovered ids containing "claude" or "anthropic" (2.1.332).
DISCOVERY_PREFIX = "claude-via-"


@dataclass(frozen=True)
class Route:
    provider: str
    model: str


@dataclass(frozen=True)
class Resolved:
    tier: Tier
    routes: tuple[Route, ...]
    thinking_allowed: bool


class RoutingError(ValueError):
    pass


def parse_route(entry: str) -> Route:
    provider, sep, model = entry.strip().partition("/")
    provider = ALIASES.get(provider.lower(), provider.lower())
    if not sep or not model:
        raise RoutingError(f"{entry!r} is not provider/model (e.g. nvidia_nim/qwen/qwen3-coder)")
    if provider not in PROVIDERS:
        known = ", ".join(PROVIDERS)
        raise RoutingError(f"unknown provider {provider!r} in {entry!r}; known: {known}")
    return Route(provider, model)


def parse_chain(value: str) -> tuple[Route, ...]:
    return tuple(parse_route(part) for part in value.split(",") if part.strip())


def discovery_id(route: Route) -> str:
    return f"{DISCOVERY_PREFIX}{route.provider}/{route.model}"


def tier_of(model: str) -> Tier:
    lowered = model.lower()
    tiers: tuple[Tier, ...] = ("opus", "sonnet", "haiku")
    for tier in tiers:
        if tier in lowered:
            return tier
    return "default"


@overload
def tier_value(settings: Settings, tier: Tier, suffix: Literal[""]) -> tuple[str, str]: ...


@overload
def tier_value(
    settings: Settings, tier: Tier, suffix: Literal["_CONTEXT_WINDOW"]
) -> tuple[str, int | None]: ...


def tier_value(settings: Settings, tier: Tier, suffix: str) -> tuple[str, str | int | None]:
    """(setting name, value) of `MODEL_<TIER><suffix>` when it is set, else of `MODEL<suffix>`,
    the setting for every tier (and the only one for `default`)."""
    if tier != "default":
        name = f"MODEL_{tier.upper()}{suffix}"
        value = getattr(settings, name.lower())
        if value:
            return name, value
    name = f"MODEL{suffix}"
    return name, getattr(settings, name.lower())


def tier_setting(settings: Settings, tier: Tier) -> tuple[str, str]:
    """(setting name, value) that routes a tier; an unset tier falls back to MODEL."""
    return tier_value(settings, tier, "")


def thinking_allowed(settings: Settings, tier: Tier) -> bool:
    return {
        "opus": settings.enable_opus_thinking,
        "sonnet": settings.enable_sonnet_thinking,
        "haiku": settings.enable_haiku_thinking,
    }.get(tier, True)


class Router:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tiers: dict[Tier, tuple[Route, ...]] = {}
        for tier in TIERS:
            name, value = tier_setting(settings, tier)
            self._tiers[tier] = _chain_of(name, value)
        self.extra = _chain_of("DISCOVERY_EXTRA_MODELS", settings.discovery_extra_models)
        self.long_context = _chain_of("MODEL_LONG_CONTEXT", settings.model_long_context or "")

    def resolve(self, model: str) -> Resolved:
        if model.startswith(DISCOVERY_PREFIX):
            try:
                route = parse_route(model[len(DISCOVERY_PREFIX) :])
            except RoutingError as exc:  # the client's mistake: a 400 naming the fix
                raise invalid_request(f"model {model!r}: {exc}; see GET /v1/models") from None
            tier = self.tier_routing(route)
            return Resolved(tier, (route,), thinking_allowed(self._settings, tier))
        provider, sep, _ = model.partition("/")
        if sep and ALIASES.get(provider.lower(), provider.lower()) in PROVIDERS:
            return Resolved(
                "default", parse_chain(model), thinking_allowed(self._settings, "default")
            )
        tier = tier_of(model)
        return Resolved(tier, self._tiers[tier], thinking_allowed(self._settings, tier))

    def table(self) -> dict[Tier, tuple[Route, ...]]:
        return dict(self._tiers)

    def tier_routing(self, route: Route) -> Tier:
        """The first tier whose chain holds `route` (`default` for an extra model)."""
        return next((t for t, routes in self._tiers.items() if route in routes), "default")


def _chain_of(name: str, value: str) -> tuple[Route, ...]:
    try:
        return parse_chain(value)
    except RoutingError as exc:
        raise RoutingError(f"{name}: {exc}") from exc
