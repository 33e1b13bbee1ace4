"""The recorded-stream corpus through a real edge: the scripted backend sends each case's exact
bytes, the official anthropic SDK reads the answer streaming and not (the non-streaming path is
the one Claude Code falls back to after a failed stream)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import anthropic
import pytest

from ccgate.edge.app import create_app
from ccgate.edge.translate.thinking import starts_in_reasoning
from ccgate.edge.transport import GuardedHttpToolsProtocol
from ccgate.shared.settings import Settings
from tests.conftest import Edge, anthropic_client, backend_env
from tests.corpus_cases import TOOLS, Case, check_error, check_message, load_cases
from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.server import ThreadedServer

CASES = load_cases()
MODEL = "claude-sonnet-4-8"
# One edge per way the backend's template starts: a model name the edge treats like the case's.
OPEN_MODEL, PLAIN_MODEL = "deepseek-r1-distill-qwen-7b", "fake-model"


@pytest.fixture(scope="module")
def edges() -> Iterator[dict[str, tuple[Edge, FakeBackend]]]:
    started: dict[str, tuple[Edge, FakeBackend]] = {}
    with ExitStack() as stack:
        for kind, model, fmt in (
            ("open", OPEN_MODEL, "openai"),
            ("plain", PLAIN_MODEL, "openai"),
            ("anthropic", PLAIN_MODEL, "anthropic"),
        ):
            backend = stack.enter_context(FakeBackend())
            env = backend_env(backend, fmt, MODEL=f"openai_compat/{model}")
            with pytest.MonkeyPatch.context() as mp:  # settings are read once, at create_app
                for key, value in env.items():
                    mp.setenv(key, value)
                app = create_app(Settings.from_env(None))
            server = stack.enter_context(ThreadedServer(app, http=GuardedHttpToolsProtocol))
            started[kind] = (Edge(server.url, app), backend)
        yield started


def request(case: Case) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "go"}],
    }
    if case.tools:
        body["tools"] = [
            {"name": name, "description": name, "input_schema": schema}
            for name, schema in TOOLS.items()
        ]
    if case.thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    return body


def as_dict(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = message.model_dump()
    return data


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_through_the_edge(case: Case, edges: dict[str, tuple[Edge, FakeBackend]]) -> None:
    if case.format == "anthropic":
        kind = "anthropic"
    else:
        kind = "open" if starts_in_reasoning(case.model, case.thinking) else "plain"
    edge, backend = edges[kind]
    backend.script(Turn(raw_chunks=[case.raw]), Turn(raw_chunks=[case.raw]))
    body = request(case)
    with anthropic_client(edge.url) as client:
        try:
            with client.messages.stream(**body) as stream:
                streamed = as_dict(stream.get_final_message())
        except anthropic.APIStatusError as error:
            err = error.body["error"] if isinstance(error.body, dict) else {}
            check_error(case, err.get("type", ""), None, err.get("message", ""))
        else:
            check_message(case, streamed)
        try:
            created = as_dict(client.messages.create(**body))
        except anthropic.APIStatusError as error:
            err = error.body["error"] if isinstance(error.body, dict) else {}
            check_error(case, err.get("type", ""), error.status_code, err.get("message", ""))
        else:
            check_message(case, created)
    assert edge.wait_idle() == 0
