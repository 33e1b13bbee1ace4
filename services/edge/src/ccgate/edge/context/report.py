"""The context windows in the start-up report and `ccgate doctor`."""

from __future__ import annotations

from ccgate.edge.context.gate import ContextGate
from ccgate.edge.providers.table import Provider
from ccgate.edge.routing import Router
from ccgate.shared.settings import Settings


def context_report(settings: Settings, router: Router, providers: dict[str, Provider]) -> list[str]:
    gate = ContextGate(settings, router)
    gate.windows.discover_sync(gate.all_routes(), providers)
    lines = []
    for route in sorted(gate.all_routes(), key=lambda r: (r.provider, r.model)):
        window = gate.window(route)
        said = window.describe() if window else "unknown (set MODEL_*_CONTEXT_WINDOW)"
        lines.append(f"  context {route.provider}/{route.model}: {said}")
        if route.provider == "ollama" and window and not window.source.startswith("MODEL_"):
            lines.append(
                "    (Ollama runs it at its default num_ctx unless the model or "
                "OLLAMA_CONTEXT_LENGTH sets one; a MODEL_*_CONTEXT_WINDOW is sent as num_ctx)"
            )
    if settings.context_usage_scaling:
        lines.append(
            f"  usage scaled for Claude Code's auto-compaction at "
            f"{settings.context_compact_at:.0%} of each known window (CONTEXT_USAGE_SCALING)"
        )
    if router.long_context:
        hops = ", ".join(f"{r.provider}/{r.model}" for r in router.long_context)
        lines.append(f"  prompts over their window go to {hops} (MODEL_LONG_CONTEXT)")
    return lines
