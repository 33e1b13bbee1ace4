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
# Claude Code's own bound on the answer (reached, `-p` sends one "resume" request, then ends
# as an error).
SHORT_ANSWER = {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "64"}
# Claude Code's full first request is ~4.2K tokens to this model (the overflow test sends
# it); a short system prompt of the CLI's own keeps the run at ~2.5K. SmolLM2-135M still
# rarely ends a reply under it (measured: 300 of 300 tokens, greedy, even with a nudge
# towards <|im_end|>), so the run may end on Claude Code's output limit.
SHORT_SYSTEM = ("--system-prompt", "You are a helpful assistant. Answer briefly.")


def main_loop_requests(edge: LlamaEdge) -> list[dict[str, object]]:
    """The /v1/messages bodies Claude Code sent (its count_tokens calls left out)."""
    bodies = [json.loads(raw) for raw in edge.recorder.requests if raw]
    return [b for b in bodies if "max_tokens" in b]


def test_cli_print_run_shows_the_models_answer(
    llama: LlamaServer, llama_edge_factory: Callable[..., LlamaEdge], corpus: Corpus
) -> None:
    edge = llama_edge_factory(llama)
    run = edge.claude("Say hello.", *SHORT_SYSTEM, **SHORT_ANSWER)
    result = run.result  # the run ended and said how
    assert main_loop_requests(edge), "Claude Code sent no Messages request"
    upstream = edge.proxy.completions() if edge.proxy else []
    assert upstream and all(e.status == 200 for e in upstream)
    streams = [
        sdk_accumulate(parse_sse(body)).model_dump()
        for status, ctype, body in edge.recorder.responses
        if status == 200 and ctype.startswith("text/event-stream")
    ]
    assert streams and all(m["stop_reason"] in ("end_turn", "max_tokens") for m in streams)
    main = max(upstream, key=lambda e: e.usage()["prompt_tokens"])
    (answer,) = [m for m in streams if m["usage"]["input_tokens"] == main.usage()["prompt_tokens"]]
    # What the user sees is what the model said.
    said = answer["content"][0]["text"].strip()
    assert said and said in [b["text"].strip() for b in run.blocks("text")]
    if answer["stop_reason"] == "end_turn":
        assert result["subtype"] == "success" and not result["is_error"], result
        assert result["result"].strip()
    # else: the 135M model talked to the output limit; Claude Code then ends the -p run as
    # an error of its own, which is not the gateway's (see SHORT_SYSTEM).
    assert edge.wait_idle() == 0
    corpus.record(
        "Claude Code -p (tools offered, the template drops them)", main, answer, tools=True
    )


@pytest.mark.parametrize("hide_props", [True, False], ids=["server refuses", "edge refuses"])
def test_cli_context_overflow_is_prompt_too_long_not_a_retry_loop(
    llama_small: LlamaServer, llama_edge_factory: Callable[..., LlamaEdge], hide_props: bool
) -> None:
    """With /props hidden the edge does not know the window and the real server's own
    overflow error must reach Claude Code; with it, the edge refuses before the server."""
    edge = llama_edge_factory(llama_small, hide_props=hide_props)
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
    if hide_props:
        assert upstream, "the server never saw the request"
        for exchange in upstream:
            error = json.loads(exchange.body)["error"]
            assert exchange.status == 400 and error["type"] == "exceed_context_size_error"
    else:
        assert upstream == []
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
    assert llama.wait_slots_idle(timeout=180) == 0  # nothing left over from an earlier test
    max_tokens = 3000
    process = edge.claude_popen(
        "Write a very long story about a dragon, at least two thousand words.",
        *SHORT_SYSTEM,
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
