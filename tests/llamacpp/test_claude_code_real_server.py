"""The real Claude Code CLI through ccgate to a real llama-server serving a real model."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import pytest

from tests.llamacpp.conftest import LlamaEdge, kill_group
from tests.llamacpp.corpus import Corpus
from tests.llamacpp.server import LlamaServer
from tests.sse_grammar import parse_sse, sdk_accumulate

pytestmark = pytest.mark.e2e
# Claude Code's own bound on the answer. Reached, it is an error for `-p` (after one
# "resume" request), so it is set well above what a greeting takes.
SHORT_ANSWER = {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "300"}


def main_loop_requests(edge: LlamaEdge) -> list[dict[str, object]]:
    """The /v1/messages bodies Claude Code sent (its count_tokens calls left out)."""
    bodies = [json.loads(raw) for raw in edge.recorder.requests if raw]
    return [b for b in bodies if "max_tokens" in b]


def test_cli_print_run_completes_with_an_answer(
    llama: LlamaServer, llama_edge_factory: Callable[..., LlamaEdge], corpus: Corpus
) -> None:
    edge = llama_edge_factory(llama)
    run = edge.claude(
        "What is the capital of France? Answer in one short sentence.", **SHORT_ANSWER
    )
    assert run.returncode == 0, (run.events[-1:], run.stderr[-2000:])
    result = run.result
    assert result["subtype"] == "success" and not result["is_error"], result
    assert result["result"].strip()
    assert main_loop_requests(edge), "Claude Code sent no Messages request"
    upstream = edge.proxy.completions() if edge.proxy else []
    assert upstream and all(e.status == 200 for e in upstream)
    assert edge.wait_idle() == 0
    main = max(upstream, key=lambda e: e.usage()["prompt_tokens"])
    for status, ctype, body in edge.recorder.responses:
        if status == 200 and ctype.startswith("text/event-stream"):
            message = sdk_accumulate(parse_sse(body)).model_dump()
            if message["usage"]["input_tokens"] == main.usage()["prompt_tokens"]:
                corpus.record(
                    "Claude Code main loop (tools offered, template drops them)",
                    main,
                    message,
                    tools=True,
                )
                break


def test_cli_context_overflow_is_prompt_too_long_not_a_retry_loop(
    llama_small: LlamaServer, llama_edge_factory: Callable[..., LlamaEdge]
) -> None:
    edge = llama_edge_factory(llama_small)
    run = edge.claude("Say hello.", **SHORT_ANSWER)
    result = run.result
    assert result["is_error"], result
    assert "prompt is too long" in json.dumps(run.events).lower(), run.events[-3:]
    refused = [body for status, _, body in edge.recorder.responses if status == 400]
    assert refused, "the edge never answered 400"
    for body in refused:
        message = json.loads(body)["error"]["message"]
        assert message.startswith("prompt is too long: ") and "tokens > 2048 maximum" in message
    upstream = edge.proxy.completions() if edge.proxy else []
    assert all(e.status == 400 for e in upstream)
    # A 400 is final for Claude Code: each distinct request is sent once, not retried.
    sent = [json.dumps(e.request, sort_keys=True) for e in upstream]
    assert len(sent) == len(set(sent)), f"{len(sent)} upstream calls, {len(set(sent))} distinct"
    assert edge.wait_idle() == 0


def _decoding(server: LlamaServer) -> int:
    """Tokens decoded so far by the busy slot (0 when none is busy)."""
    for slot in server.get("/slots"):
        if slot.get("is_processing"):
            return int(slot.get("next_token", [{}])[0].get("n_decoded", 0))
    return 0


def test_interrupted_cli_frees_the_server_slot_and_the_lease(
    llama: LlamaServer, llama_edge_factory: Callable[..., LlamaEdge]
) -> None:
    edge = llama_edge_factory(llama, record_upstream=False)
    assert llama.wait_slots_idle() == 0
    max_tokens = 3000
    process = edge.claude_popen(
        "Write a very long story about a dragon, at least two thousand words.",
        CLAUDE_CODE_MAX_OUTPUT_TOKENS=str(max_tokens),
    )
    try:
        deadline = time.monotonic() + 240
        while _decoding(llama) < 3:
            assert process.poll() is None, process.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the answer never started"
            time.sleep(0.1)
        assert edge.in_flight() >= 1  # the lease is held while the answer streams
        edge.interrupted = True
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does to the CLI
        process.wait(timeout=30)
    finally:
        kill_group(process)
    assert llama.wait_slots_idle() == 0
    (slot,) = llama.get("/slots")
    stopped_at = slot["next_token"][0]
    # Cut off from outside: the model had not finished (no end-of-generation token seen)
    # and had tokens left.
    assert stopped_at["has_next_token"] and stopped_at["n_decoded"] < max_tokens
    assert edge.wait_idle() == 0
