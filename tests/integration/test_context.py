"""Model discovery and context windows through a real edge: the ids Claude Code keeps, the
window from settings or from the backend, the 400 Claude Code compacts on, MODEL_LONG_CONTEXT,
usage scaled (and not), Ollama's num_ctx."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest

from ccgate.edge.context.report import context_report
from ccgate.edge.providers.table import configure_all
from ccgate.edge.routing import Router
from ccgate.shared.settings import Settings
from tests.conftest import Edge, anthropic_client, backend_env
from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.model_info import FakeModelInfo

LONG_TEXT = "lorem ipsum dolor sit amet " * 2000  # ~12K tokens


def ask(edge: Edge, model: str, text: str = "hi", stream: bool = False) -> object:
    with anthropic_client(edge.url) as client:
        if stream:
            with client.messages.stream(
                model=model, max_tokens=100, messages=[{"role": "user", "content": text}]
            ) as s:
                return s.get_final_message()
        return client.messages.create(
            model=model, max_tokens=100, messages=[{"role": "user", "content": text}]
        )


def test_models_lists_every_routed_model_under_an_id_claude_code_keeps(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(
        backend_env(
            backend,
            MODEL_SONNET="openai_compat/fake-sonnet",
            MODEL_SONNET_CONTEXT_WINDOW="32768",
            DISCOVERY_EXTRA_MODELS="openai_compat/extra-one",
        )
    )
    page = httpx.get(edge.url + "/v1/models", params={"limit": 1000}).json()
    by_id = {m["id"]: m for m in page["data"]}
    assert set(by_id) == {
        "claude-via-openai_compat/fake-model",
        "claude-via-openai_compat/fake-sonnet",
        "claude-via-openai_compat/extra-one",
    }
    # Claude Code 2.1.332 keeps ids matching /(claude|anthropic)/i and shows display_name.
    assert all(re.search("(claude|anthropic)", i, re.I) for i in by_id)
    sonnet = by_id["claude-via-openai_compat/fake-sonnet"]
    assert sonnet["display_name"] == "Sonnet → openai_compat/fake-sonnet"
    assert sonnet["max_input_tokens"] == 32768
    assert "32,768-token context" in sonnet["description"]
    assert len(sonnet["description"]) <= 100  # the CLI cuts descriptions at 100
    assert by_id["claude-via-openai_compat/fake-model"]["display_name"].startswith("Opus, Haiku")
    # A request for a listed id goes to exactly that backend model.
    ask(edge, "claude-via-openai_compat/extra-one")
    ask(edge, "claude-via-openai_compat/fake-sonnet")
    assert [r.body["model"] for r in backend.requests] == ["extra-one", "fake-sonnet"]
    # A mistyped one is the client's mistake, said as such.
    for wrong in ("claude-via-nowhere/x", "claude-via-ollama"):
        answer = httpx.post(
            edge.url + "/v1/messages",
            json={"model": wrong, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        assert answer.status_code == 400, answer.text
        assert "GET /v1/models" in answer.json()["error"]["message"]


def test_a_prompt_over_its_window_gets_the_400_claude_code_compacts_on(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    import anthropic

    edge = edge_factory(backend_env(backend, MODEL_CONTEXT_WINDOW="4096"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(edge, "claude-sonnet-5", LONG_TEXT)
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    # The CLI's own pattern for this error (2.1.332): the whole message, both numbers.
    found = re.fullmatch(r"prompt is too long: (\d+) tokens > (\d+) maximum", message)
    assert found, message
    tokens, maximum = int(found.group(1)), int(found.group(2))
    assert tokens > maximum
    # Scaled like the usage Claude Code sees: 4096 tokens at 80% is its 1M window.
    assert maximum == round(4096 * 1_000_000 / (4096 * 0.8))
    assert backend.requests == []
    assert edge.wait_idle() == 0
    ask(edge, "claude-sonnet-5", "short")  # a prompt that fits goes through
    assert len(backend.requests) == 1


def test_a_prompt_over_its_window_goes_to_model_long_context(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(
        backend_env(
            backend,
            MODEL_CONTEXT_WINDOW="4096",
            MODEL_LONG_CONTEXT="openai_compat/long-model",
        )
    )
    ask(edge, "claude-sonnet-5", "short")
    ask(edge, "claude-sonnet-5", LONG_TEXT)
    assert [r.body["model"] for r in backend.requests] == ["fake-model", "long-model"]


@pytest.mark.parametrize("stream", [False, True])
def test_usage_is_scaled_to_the_backend_window_and_can_be_switched_off(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge], stream: bool
) -> None:
    backend.default = Turn(text="ok", usage=(1000, 45))
    scaled = edge_factory(backend_env(backend, MODEL_CONTEXT_WINDOW="32768"))
    message = ask(scaled, "claude-sonnet-5", stream=stream)
    factor = 1_000_000 / (32768 * 0.8)
    assert message.usage.input_tokens == round(1000 * factor)  # type: ignore[attr-defined]
    assert message.usage.output_tokens == 45  # type: ignore[attr-defined]
    rows = httpx.get(scaled.url + "/ccgate/usage").json()["rows"]
    assert rows[0]["input_tokens"] == 1000  # the gateway records the real count

    plain = edge_factory(
        backend_env(backend, MODEL_CONTEXT_WINDOW="32768", CONTEXT_USAGE_SCALING="false")
    )
    message = ask(plain, "claude-sonnet-5", stream=stream)
    assert message.usage.input_tokens == 1000  # type: ignore[attr-defined]


def test_ollama_is_sent_its_window_as_num_ctx(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(
        {
            "MODEL": "ollama/qwen2.5-coder:7b",
            "OLLAMA_BASE_URL": backend.url,
            "MODEL_CONTEXT_WINDOW": "16384",
        }
    )
    ask(edge, "claude-sonnet-5")
    assert backend.requests[0].body["options"] == {"num_ctx": 16384}


def ollama_show(num_ctx: int | None, trained: int) -> dict[str, object]:
    """Shape of Ollama's documented /api/show answer (fields trimmed)."""
    parameters = 'stop "<|im_end|>"' + (f"\nnum_ctx {num_ctx}" if num_ctx else "")
    return {
        "modelfile": "FROM qwen",
        "parameters": parameters,
        "template": "{{ .Prompt }}",
        "details": {"family": "qwen2", "parameter_size": "7.6B"},
        "model_info": {"general.architecture": "qwen2", "qwen2.context_length": trained},
    }


def test_windows_are_read_from_the_backends_that_say(
    edge_factory: Callable[[dict[str, str]], Edge],
) -> None:
    with FakeModelInfo() as info:
        info.ollama = {
            "qwen3:8b": ollama_show(8192, 40960),
            "plain:1b": ollama_show(None, 131072),
        }
        info.lmstudio = [
            {
                "id": "qwen2.5-coder-14b",
                "object": "model",
                "type": "llm",
                "state": "not-loaded",
                "max_context_length": 65536,
            }
        ]
        info.openrouter = [
            {"id": "qwen/qwen3-coder", "name": "Qwen3 Coder", "context_length": 262144}
        ]
        env = {
            "MODEL_OPUS": "ollama/qwen3:8b",
            "MODEL_SONNET": "lmstudio/qwen2.5-coder-14b",
            "MODEL_HAIKU": "openrouter/qwen/qwen3-coder",
            "MODEL": "ollama/plain:1b",
            "OLLAMA_BASE_URL": info.server_url,
            "LMSTUDIO_BASE_URL": info.server_url + "/v1",
            "OPENROUTER_BASE_URL": info.server_url + "/api/v1",
            "OPENROUTER_API_KEY": "sk-or-secret",
        }
        edge = edge_factory(env)
        page = httpx.get(edge.url + "/v1/models").json()
        windows = {m["id"]: m.get("max_input_tokens") for m in page["data"]}
        assert windows == {
            "claude-via-ollama/qwen3:8b": 8192,  # the num_ctx it runs at, not the trained 40960
            "claude-via-lmstudio/qwen2.5-coder-14b": 65536,
            "claude-via-openrouter/qwen/qwen3-coder": 262144,
            "claude-via-ollama/plain:1b": 131072,
        }
        assert ("/api/v1/models", "Bearer sk-or-secret") in info.seen
        # The same, read synchronously, in the start-up report and `ccgate doctor`.
        settings = Settings.from_env(None)
        report = context_report(settings, Router(settings), configure_all(settings))
        assert "  context ollama/qwen3:8b: 8,192 tokens (ollama /api/show)" in report
        assert (
            "  context openrouter/qwen/qwen3-coder: 262,144 tokens (openrouter /models)" in report
        )
        assert not any("sk-or-secret" in line for line in report)


def test_a_setting_wins_over_what_the_backend_says(
    edge_factory: Callable[[dict[str, str]], Edge],
) -> None:
    with FakeModelInfo() as info:
        info.ollama = {"qwen3:8b": ollama_show(8192, 40960)}
        edge = edge_factory(
            {
                "MODEL": "ollama/qwen3:8b",
                "OLLAMA_BASE_URL": info.server_url,
                "MODEL_CONTEXT_WINDOW": "20000",
            }
        )
        page = httpx.get(edge.url + "/v1/models").json()
        assert page["data"][0]["max_input_tokens"] == 20000
        assert "MODEL_CONTEXT_WINDOW" in json.dumps(page)


def test_count_tokens_is_scaled_like_the_usage(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    body = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": LONG_TEXT}]}
    scaled = edge_factory(backend_env(backend, MODEL_CONTEXT_WINDOW="32768"))
    counted = httpx.post(scaled.url + "/v1/messages/count_tokens", json=body).json()
    # (the factory's environment carries over: this edge has the window and scaling off)
    plain = edge_factory(backend_env(backend, CONTEXT_USAGE_SCALING="false"))
    real = httpx.post(plain.url + "/v1/messages/count_tokens", json=body).json()["input_tokens"]
    assert counted["input_tokens"] == round(real * 1_000_000 / (32768 * 0.8))
