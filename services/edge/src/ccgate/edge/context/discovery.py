"""`GET /v1/models` in the shape Claude Code's model picker reads.

Claude Code 2.1.332 (with CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1) asks
`/v1/models?limit=1000`, keeps entries whose id contains "claude" or "anthropic", and reads
only `id`, `display_name` and `description` (cut to 100 characters). So every routed model is
listed as `claude-via-<provider>/<model>`, its route and limits said in words; the limits are
also given as `max_input_tokens` / `max_tokens`, the Anthropic Models API's own fields, for
clients that read them (2.1.332 strips them).
"""

from __future__ import annotations

from typing import Any

from ccgate.edge.context.gate import ContextGate
from ccgate.edge.routing import Route, Tier, discovery_id

TIER_NAMES: dict[Tier, str] = {
    "opus": "Opus",
    "sonnet": "Sonnet",
    "haiku": "Haiku",
    "default": "Other",
}


def _entry(gate: ContextGate, route: Route, label: str, created: str) -> dict[str, Any]:
    target = f"{route.provider}/{route.model}"
    window = gate.window(route)
    entry: dict[str, Any] = {
        "type": "model",
        "id": discovery_id(route),
        "display_name": f"{label} → {target}",
        "description": (
            f"{window.tokens:,}-token context ({window.source})" if window else "context unknown"
        )
        + " · via ccgate",
        "created_at": created,
    }
    if window:
        entry["max_input_tokens"] = window.tokens
    return entry


def models_page(gate: ContextGate, created: str) -> dict[str, Any]:
    """Each routed model once, labelled with every tier (or role) that uses it."""
    chains: list[tuple[str, tuple[Route, ...]]] = [
        (TIER_NAMES[tier], routes) for tier, routes in gate.router.table().items()
    ]
    chains += [("Extra", gate.router.extra), ("Long context", gate.router.long_context)]
    labels: dict[Route, list[str]] = {}
    for label, routes in chains:
        for route in routes:
            roles = labels.setdefault(route, [])
            if label not in roles:
                roles.append(label)
    data = [_entry(gate, r, ", ".join(roles), created) for r, roles in labels.items()]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
