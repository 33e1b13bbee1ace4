"""The real CLI on a backend with a 32K window: Claude Code compacts the conversation itself,
before any request overflows the backend, with plain `claude` and ANTHROPIC_BASE_URL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Harness
from tests.fakes.backend import Turn

pytestmark = pytest.mark.e2e
WINDOW = 32768
# ~4,500 tokens of tool output a turn: eight of them cannot fit in 32K with the system prompt.
BIG_OUTPUT = "python3 -c \"print('alpha beta gamma delta ' * 900)\""


def is_compaction(body: dict[str, Any]) -> bool:
    """Claude Code's summary request (2.1.332): its last user turn asks for text only."""
    return "Respond with TEXT ONLY" in json.dumps(body["messages"][-1])


def test_claude_code_compacts_before_the_backend_window_overflows(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory("openai", MODEL_CONTEXT_WINDOW=str(WINDOW))
    h.backend.context_window = WINDOW
    summary = Turn(
        text="<summary>The user had blocks of words printed.</summary>", count_prompt=True
    )
    h.backend.intercept = lambda body: summary if is_compaction(body) else None
    h.backend.script(
        *[
            Turn(
                text=f"Printing block {n}.",
                tool_calls=[("Bash", {"command": BIG_OUTPUT, "description": f"block {n}"})],
                count_prompt=True,
            )
            for n in range(8)
        ],
        Turn(text="All blocks printed.", count_prompt=True),
    )
    run = h.claude("print eight blocks of words", "--allowedTools", "Bash")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["result"] == "All blocks printed."
    bodies = [r.body for r in h.backend.requests]
    compactions = [i for i, body in enumerate(bodies) if is_compaction(body)]
    assert compactions, f"no compaction; prompt sizes: {h.backend.prompt_counts}"
    boundaries = [e for e in run.events if e.get("subtype") == "compact_boundary"]
    assert boundaries and boundaries[0]["compact_metadata"]["trigger"] == "auto"
    # Every request fitted the backend: none overflowed, so none was refused or truncated.
    assert max(h.backend.prompt_counts) <= WINDOW, h.backend.prompt_counts
    assert "prompt is too long" not in json.dumps(run.events)
    # Without compaction the session would not have fitted.
    assert sum(h.backend.prompt_counts[i] for i in compactions) > 0
    assert len(bodies) > compactions[0] + 1  # the session went on after compacting
