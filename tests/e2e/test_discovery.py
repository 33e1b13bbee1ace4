"""Gateway model discovery with the real CLI: Claude Code asks `/v1/models`, keeps our ids,
and a session started on one of them is routed to that backend model."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Harness

pytestmark = pytest.mark.e2e


class ModelsRequests:
    """Wraps the edge app and keeps the headers of each GET /v1/models."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/models":
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.seen.append((scope["query_string"].decode(), headers))
        await self.app(scope, receive, send)


@pytest.mark.parametrize("auth", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
def test_claude_code_keeps_the_discovered_models_and_routes_to_them(
    harness_factory: Callable[..., Harness], auth: str
) -> None:
    h = harness_factory("openai", MODEL_SONNET="openai_compat/fake-sonnet")
    models = ModelsRequests(h.recorder.app)
    h.recorder.app = models
    credential = {"ANTHROPIC_API_KEY": "", auth: "client-credential"}
    run = h.claude("hi", CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY="1", **credential)
    assert run.returncode == 0, run.stderr[-2000:]
    query, headers = models.seen[0]
    assert query == "limit=1000"
    if auth == "ANTHROPIC_API_KEY":
        assert headers["x-api-key"] == "client-credential" and "authorization" not in headers
    else:
        assert headers["authorization"] == "Bearer client-credential"
    # What the CLI kept: its cache holds our ids, for this base URL.
    cache = json.loads((h.home / ".claude" / "cache" / "gateway-models.json").read_text())
    assert cache["baseUrl"] == h.edge_url
    kept = {m["id"]: m.get("display_name") for m in cache["models"]}
    assert kept == {
        "claude-via-openai_compat/fake-model": "Opus, Haiku, Other → openai_compat/fake-model",
        "claude-via-openai_compat/fake-sonnet": "Sonnet → openai_compat/fake-sonnet",
    }
    assert all(set(m) <= {"id", "display_name", "description"} for m in cache["models"])
    # A session on a discovered id reaches exactly that model.
    run = h.claude("hi", "--model", "claude-via-openai_compat/fake-sonnet", **credential)
    assert run.returncode == 0, run.stderr[-2000:]
    assert h.backend.requests[-1].body["model"] == "fake-sonnet"


def test_without_the_opt_in_claude_code_does_not_ask(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory("openai")
    models = ModelsRequests(h.recorder.app)
    h.recorder.app = models
    run = h.claude("hi")
    assert run.returncode == 0, run.stderr[-2000:]
    assert models.seen == []
