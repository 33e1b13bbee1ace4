"""schemathesis against the running edge (a scripted backend behind it): whatever the schema
allows, and what it does not, gets no 5xx, every error is Anthropic-shaped, and no limiter
lease is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from tests.conftest import Edge, backend_env
from tests.fakes.backend import FakeBackend, Turn

EDGES: list[Edge] = []


@pytest.fixture(scope="module")
def fuzz_edge() -> Iterator[Edge]:
    from ccgate.edge.app import create_app
    from ccgate.shared.settings import Settings
    from tests.fakes.server import ThreadedServer

    with FakeBackend(
        default=Turn(text="fuzzed", tool_calls=[("Bash", {"command": "ls"})])
    ) as backend:
        mp = pytest.MonkeyPatch()
        for key, value in backend_env(backend).items():
            mp.setenv(key, value)
        app = create_app(Settings.from_env(None))
        with ThreadedServer(app) as server:
            edge = Edge(server.url, app)
            EDGES.append(edge)
            yield edge
        mp.undo()


def check(case: Any) -> None:
    response = case.call(timeout=30)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["type"] == "error" and isinstance(body["error"]["message"], str), body
    elif str(response.headers.get("content-type")).find("application/json") >= 0:
        body = response.json()
        assert "content" in body or "input_tokens" in body


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_anthropic_shaped_errors(
    fuzz_edge: Edge, path: str, mode: GenerationMode
) -> None:
    # Positive: requests the schema allows; negative: requests that break it on purpose.
    schema = schemathesis.openapi.from_url(fuzz_edge.url + "/openapi.json")
    strategy = schema[path]["POST"].as_strategy(generation_mode=mode)

    @given(case=strategy)
    @settings(
        max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: Any) -> None:
        check(case)

    run()


def test_no_lease_left_after_fuzzing(fuzz_edge: Edge) -> None:
    assert fuzz_edge.wait_idle() == 0
