"""`ccgate doctor` and `ccgate serve` read a real llama-server's /props and say what they
found: the context per slot and whether the model's chat template can show tools."""

from __future__ import annotations

import os
import subprocess
import sys

from ccgate.edge.llamacpp import parse_props, read_props
from tests.fakes.server import free_port
from tests.llamacpp.server import MODEL_N_CTX_TRAIN, LlamaServer


def gateway_env(server: LlamaServer) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return keep | {"MODEL": "llamacpp/smollm2-135m", "LLAMACPP_BASE_URL": server.url + "/v1"}


def test_props_of_the_real_server(llama: LlamaServer) -> None:
    props = read_props(llama.url + "/v1")
    assert props is not None
    assert props.n_ctx == MODEL_N_CTX_TRAIN and props.total_slots == 1
    assert "SmolLM2" in props.model
    raw = llama.get("/props")
    assert props == parse_props(raw)
    # SmolLM2-135M-Instruct's template has no tools section: the server says so itself.
    assert props.supports_tools is bool(raw["chat_template_caps"]["supports_tools"]) is False


def test_not_a_llama_server_reads_as_none(llama: LlamaServer) -> None:
    assert read_props(f"http://127.0.0.1:{free_port()}/v1") is None  # nothing listening
    assert parse_props({"data": []}) is None  # e.g. an OpenAI /models body


def test_doctor_reports_context_and_missing_tool_support(llama: LlamaServer) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ccgate.cli", "doctor"],
        env=gateway_env(llama),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in run.stdout.splitlines() if "llamacpp: llama.cpp server" in line]
    assert len(lines) == 1, run.stdout
    assert lines[0].startswith("  [FIX]")
    assert f"context {MODEL_N_CTX_TRAIN} tokens per slot" in lines[0]
    assert "DOES NOT RENDER TOOLS" in lines[0]
    assert run.returncode == 1  # a routed backend that cannot call tools is a problem


def test_serve_start_up_report_says_it_too(llama_small: LlamaServer) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ccgate.cli", "serve", "--port", str(free_port())],
        env=gateway_env(llama_small),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        report = []
        for line in process.stderr:
            report.append(line)
            if "use: ANTHROPIC_BASE_URL" in line:
                break
    finally:
        process.terminate()
        process.wait(timeout=10)
    warning = [line for line in report if "WARNING: llamacpp:" in line]
    assert len(warning) == 1, report
    assert "context 2048 tokens per slot" in warning[0] and "DOES NOT RENDER TOOLS" in warning[0]
