"""The real Claude Code CLI completes tool loops through ccgate — through the OpenAI-compatible
translation and through the Anthropic pass-through, from the same scripts."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Harness
from tests.fakes.backend import Turn

pytestmark = pytest.mark.e2e
FORMATS = ["openai", "anthropic"]


def in_flight(h: Harness) -> int:
    status = asyncio.run(h.app.state.limiter.status())
    return sum(p["in_flight"] for p in status["providers"].values())


def sent_text(h: Harness, index: int) -> str:
    """Everything the model was shown in request `index`, as one string."""
    return json.dumps(h.backend.requests[index].body)


def tool_results(h: Harness, index: int) -> list[dict[str, Any]]:
    """Tool results the model received in request `index`, in a format-neutral shape."""
    body = h.backend.requests[index].body
    out = []
    for message in body["messages"]:
        if message["role"] == "tool":  # OpenAI
            out.append(
                {
                    "content": message["content"],
                    "is_error": message["content"].startswith("[tool error]"),
                }
            )
        elif isinstance(message.get("content"), list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    content = block["content"]
                    text = content if isinstance(content, str) else json.dumps(content)
                    out.append({"content": text, "is_error": bool(block.get("is_error"))})
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_multi_step_tool_loop(harness_factory: Callable[..., Harness], fmt: str) -> None:
    h = harness_factory(fmt)
    target = h.workspace / "notes.txt"
    h.backend.script(
        Turn(
            text="I'll write the file.",
            tool_calls=[("Write", {"file_path": str(target), "content": "hello ccgate\n"})],
        ),
        Turn(
            text="Now I'll read it back.",
            tool_calls=[("Bash", {"command": f"cat {target}", "description": "show file"})],
        ),
        Turn(text="The file says: hello ccgate"),
    )
    run = h.claude("write notes.txt then cat it", "--allowedTools", "Write,Bash")
    assert run.returncode == 0, run.stderr
    assert target.read_text() == "hello ccgate\n"
    assert run.result["subtype"] == "success" and not run.result["is_error"]
    assert run.result["result"] == "The file says: hello ccgate"
    assert len(h.backend.requests) == 3
    assert any("hello ccgate" in r["content"] for r in tool_results(h, 2))
    assert in_flight(h) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_failing_tool_is_visible_to_the_model(
    harness_factory: Callable[..., Harness], fmt: str
) -> None:
    h = harness_factory(fmt)
    h.backend.script(
        Turn(
            text="Listing.",
            tool_calls=[
                ("Bash", {"command": "ls /definitely-not-here-ccgate", "description": "ls"})
            ],
        ),
        Turn(text="That directory does not exist."),
    )
    run = h.claude("list it", "--allowedTools", "Bash")
    assert run.returncode == 0, run.stderr
    results = tool_results(h, 1)
    assert len(results) == 1 and results[0]["is_error"]
    assert "definitely-not-here-ccgate" in results[0]["content"]
    assert run.result["result"] == "That directory does not exist."


@pytest.mark.parametrize("fmt", FORMATS)
def test_parallel_tool_calls(harness_factory: Callable[..., Harness], fmt: str) -> None:
    h = harness_factory(fmt)
    h.backend.script(
        Turn(
            text="Both at once.",
            tool_calls=[
                ("Bash", {"command": "echo first-call", "description": "one"}),
                ("Bash", {"command": "echo second-call", "description": "two"}),
            ],
        ),
        Turn(text="Done with both."),
    )
    run = h.claude("run two things", "--allowedTools", "Bash")
    assert run.returncode == 0, run.stderr
    contents = " ".join(r["content"] for r in tool_results(h, 1))
    assert "first-call" in contents and "second-call" in contents
    assert len(run.blocks("tool_use")) == 2


@pytest.mark.parametrize(
    ("fmt", "think_tags"), [("openai", False), ("openai", True), ("anthropic", False)]
)
def test_thinking_is_shown_and_the_next_turn_is_accepted(
    harness_factory: Callable[..., Harness], fmt: str, think_tags: bool
) -> None:
    h = harness_factory(fmt)
    h.backend.script(
        Turn(
            reasoning="I should check the date first.",
            think_tags=think_tags,
            text="Checking.",
            tool_calls=[("Bash", {"command": "echo 2026", "description": "year"})],
        ),
        Turn(reasoning="Now answer.", think_tags=think_tags, text="It is 2026."),
    )
    run = h.claude("what year is it", "--allowedTools", "Bash")
    assert run.returncode == 0, run.stderr
    thinking = run.blocks("thinking")
    assert thinking and thinking[0]["thinking"] == "I should check the date first."
    assert run.result["result"] == "It is 2026."
    second = h.backend.requests[1].body
    if fmt == "openai":  # openai_compat drops earlier reasoning (it rejects or ignores it)
        assert "reasoning_content" not in json.dumps(second["messages"])
        assert "<think>" not in json.dumps(second["messages"])
    else:  # the native backend gets its thinking block back, signature intact
        blocks = [
            b for m in second["messages"] if isinstance(m["content"], list) for b in m["content"]
        ]
        assert any(b.get("type") == "thinking" and b.get("signature") == "sig-fake" for b in blocks)


def test_text_emitted_tool_call_runs_the_tool(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory("openai")
    h.backend.script(
        Turn(
            text="Running it.",
            text_tool_calls=True,
            tool_calls=[("Bash", {"command": "echo text-tool-ran", "description": "x"})],
        ),
        Turn(text="It ran."),
    )
    run = h.claude("run it", "--allowedTools", "Bash")
    assert run.returncode == 0, run.stderr
    assert any("text-tool-ran" in r["content"] for r in tool_results(h, 1))
    assert run.result["result"] == "It ran."


@pytest.mark.parametrize("fmt", FORMATS)
def test_rate_limits_recover_or_end_clearly(
    harness_factory: Callable[..., Harness], fmt: str
) -> None:
    h = harness_factory(fmt)
    limited = Turn(
        status=429, headers={"retry-after": "1"}, error_body={"error": {"message": "slow down"}}
    )
    h.backend.script(limited, limited, Turn(text="Got through."))
    run = h.claude("hello")
    assert run.returncode == 0, run.stderr
    assert run.result["result"] == "Got through."
    assert len(h.backend.requests) == 3

    h.backend.default = limited
    started = time.monotonic()
    run = h.claude("hello again", CLAUDE_CODE_MAX_RETRIES="1")
    assert run.returncode == 1
    assert run.result["is_error"]
    assert "429" in json.dumps(run.result) or "rate" in json.dumps(run.result).lower()
    assert time.monotonic() - started < 60
    assert in_flight(h) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_mid_stream_failure_and_stall_are_recovered_in_bounded_time(
    harness_factory: Callable[..., Harness], fmt: str
) -> None:
    h = harness_factory(fmt, HTTP_FIRST_BYTE_TIMEOUT="1")
    h.backend.script(
        Turn(
            text="partial",
            stream_error={"type": "overloaded_error", "message": "backend fell over"}
            if fmt == "anthropic"
            else {"error": {"message": "backend fell over"}},
        ),
        Turn(text="Recovered after the failure."),
    )
    started = time.monotonic()
    run = h.claude("hello")
    assert run.returncode == 0, run.stderr
    assert run.result["result"] == "Recovered after the failure."

    h.backend.script(Turn(text="too late", stall=4), Turn(text="Recovered after the stall."))
    run = h.claude("hello")
    assert run.returncode == 0, run.stderr
    assert run.result["result"] == "Recovered after the stall."
    assert time.monotonic() - started < 90
    deadline = time.monotonic() + 5
    while (in_flight(h) or h.backend.open_streams) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_flight(h) == 0 and h.backend.open_streams == 0


def test_side_requests_are_answered_locally(harness_factory: Callable[..., Harness]) -> None:
    """The pinned 2.1.332 CLI makes no side request in -p mode even with non-essential traffic
    on (observed: only the main loop arrives). The side requests older CLIs send are replayed
    from the wire captures: the edge answers them, and none reaches the backend."""
    import httpx

    h = harness_factory("openai")
    h.backend.script(Turn(text="Main answer."))
    run = h.claude("fix the login page", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="")
    assert run.returncode == 0, run.stderr
    assert run.result["result"] == "Main answer."
    assert len(h.backend.requests) == len(h.recorder.responses) == 1
    fixtures = Path(__file__).parent.parent / "fixtures"
    title = json.loads((fixtures / "side_request_title.json").read_text())["body"]
    probe = {
        "model": "claude-haiku-4-5",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "quota"}],
    }
    for body in (title, probe):
        response = httpx.post(h.edge_url + "/v1/messages?beta=true", json=body, timeout=10)
        assert response.status_code == 200
    assert len(h.backend.requests) == 1


def test_tier_routing(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(
        "openai",
        MODEL_OPUS="openai_compat/opus-backend",
        MODEL_SONNET="openai_compat/sonnet-backend",
        MODEL_HAIKU="openai_compat/haiku-backend",
    )
    for choice, expected in (
        ("sonnet", "sonnet-backend"),
        ("haiku", "haiku-backend"),
        ("opus", "opus-backend"),
    ):
        h.backend.requests.clear()
        run = h.claude("hi", "--model", choice)
        assert run.returncode == 0, run.stderr
        assert h.backend.requests[-1].body["model"] == expected


def test_ccgate_code_runs_claude_against_the_gateway(
    harness_factory: Callable[..., Harness],
) -> None:
    from tests.e2e.conftest import claude_path

    h = harness_factory("openai")
    h.backend.script(Turn(text="Through ccgate code."))
    ccgate = str(Path(sys.executable).parent / "ccgate")
    env = {
        "CCGATE_EDGE_URL": h.edge_url,
        "CLAUDE_BIN": claude_path(),
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    }
    run = h.claude("hi", argv=[ccgate, "code"], **env)
    assert run.returncode == 0, run.stderr
    assert run.result["result"] == "Through ccgate code."
    assert len(h.backend.requests) == 1


def test_token_counts_agree_with_the_backend(harness_factory: Callable[..., Harness]) -> None:
    """Auto-compaction relies on input token counts. On a real Claude Code request the
    offline count (count_tokens) must be within 15 % of what the backend's tokenizer reports,
    and the instant estimate in message_start within 40 %; message_delta carries the backend's
    own number."""
    from ccgate.edge.translate.tokens import count_tokens
    from tests.sse_grammar import parse_sse

    h = harness_factory("openai")
    h.backend.script(Turn(text="Counted.", count_prompt=True))
    run = h.claude("count my tokens please")
    assert run.returncode == 0, run.stderr
    request = json.loads(h.recorder.requests[-1])
    events = parse_sse(h.recorder.responses[-1][2])
    backend_count = next(d for n, d in events if n == "message_delta")["usage"]["input_tokens"]
    estimate = next(d for n, d in events if n == "message_start")["message"]["usage"][
        "input_tokens"
    ]
    offline = count_tokens(request)
    print(f"tokens: backend {backend_count}, offline {offline}, estimate {estimate}")
    assert backend_count > 3000  # a real Claude Code prompt, not a toy
    assert abs(offline - backend_count) / backend_count < 0.15, (offline, backend_count)
    assert abs(estimate - backend_count) / backend_count < 0.40, (estimate, backend_count)
