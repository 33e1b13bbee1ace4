"""The peers' contenders: installed from the package registries at pinned versions into
~/.cache/ccgate/ (outside the clone, one folder per version, so a second run is fast), configured against the same fake backend, started and
waited for. Used by bench/peers.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.processes import edge_env, free_port, start_edge

CACHE = Path(os.environ.get("CCGATE_BENCH_CACHE", Path.home() / ".cache" / "ccgate"))
LITELLM_VERSION = "1.108.7"
LITELLM_KEY = "sk-bench-0123456789abcdef"  # a local benchmark key, not a secret
CCR_VERSION = "2.0.0"  # 3.1.1 depends on a package the npm registry does not serve (404)


@dataclass
class Contender:
    name: str
    url: str  # where Anthropic Messages requests go ("" for direct)
    process: subprocess.Popen[bytes] | None = None
    model_small: str = "claude-sonnet-4-8"
    model_stream: str = "claude-opus-4-8"
    model_idle: str = "claude-haiku-4-5"
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    route: str = "{}"  # how this gateway names the backend's model `m-N` (for bench/wrk.py)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)


def install_litellm() -> Path:
    venv = CACHE / f"litellm-{LITELLM_VERSION}"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "litellm").exists():
        uv = shutil.which("uv") or "uv"
        run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        result = run(
            [
                uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                f"litellm[proxy]=={LITELLM_VERSION}",
            ]
        )
        if result.returncode:
            raise RuntimeError(
                f"pip install litellm[proxy]=={LITELLM_VERSION} failed: {result.stderr[-300:]}"
            )
    return venv / "bin" / "litellm"


def install_ccr() -> Path:
    where = CACHE / f"ccr-{CCR_VERSION}"
    binary = where / "node_modules" / ".bin" / "ccr"
    if not binary.exists():
        where.mkdir(parents=True, exist_ok=True)
        result = run(
            [
                "npm",
                "install",
                "--prefix",
                str(where),
                "--no-audit",
                "--no-fund",
                f"@musistudio/claude-code-router@{CCR_VERSION}",
            ]
        )
        if result.returncode:
            raise RuntimeError(
                f"npm install @musistudio/claude-code-router@{CCR_VERSION} failed: {result.stderr[-300:]}"
            )
    return binary


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before answering")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"no answer at {url} within {timeout:.0f}s")


def start_ccgate(backend_port: int, redis_url: str | None, **extra: str) -> Contender:
    port = free_port()
    env = edge_env(
        backend_port,
        MODEL="openai_compat/m-1",
        MODEL_OPUS="openai_compat/m-200",
        MODEL_HAIKU="openai_compat/m-idle",
        HTTP_FIRST_BYTE_TIMEOUT="600",
        HTTP_READ_TIMEOUT="600",
        **({"REDIS_URL": redis_url} if redis_url else {}),
        **extra,
    )
    process = start_edge(port, env)  # uvicorn listens once the app has started
    name = "ccgate (Redis limiter)" if redis_url else "ccgate"
    return Contender(
        name, f"http://127.0.0.1:{port}/v1/messages", process, route="openai_compat/{}"
    )


def start_litellm(backend: str, workdir: Path) -> Contender:
    # hosted_vllm/: LiteLLM's openai/ provider sends /v1/messages to the Responses API, which a
    # plain chat-completions server (the fake, vLLM, llama.cpp, …) does not serve.
    binary = install_litellm()
    port = free_port()
    models = {"claude-sonnet-4-8": "m-1", "claude-opus-4-8": "m-200", "claude-haiku-4-5": "m-idle"}
    models.update({f"bench-{m}": m for m in ("m-1", "m-50", "m-paced")})
    config = (
        "model_list:\n"
        + "".join(
            f"  - model_name: {name}\n    litellm_params:\n      model: hosted_vllm/{model}\n"
            f"      api_base: {backend}/v1\n      api_key: sk-fake\n"
            for name, model in models.items()
        )
        + "litellm_settings:\n  drop_params: true\n  telemetry: false\n"
    )
    (workdir / "litellm.yaml").write_text(config)
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "NO_DOCS": "True",
        "LITELLM_MASTER_KEY": LITELLM_KEY,  # it refuses to start without one
    }
    process = subprocess.Popen(
        [
            str(binary),
            "--config",
            str(workdir / "litellm.yaml"),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--num_workers",
            "1",
        ],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    contender = Contender(
        f"LiteLLM proxy {LITELLM_VERSION}",
        f"http://127.0.0.1:{port}/v1/messages",
        process,
        headers={"x-api-key": LITELLM_KEY, "authorization": f"Bearer {LITELLM_KEY}"},
        route="bench-{}",
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", process, timeout=180)
    return contender


def start_ccr(backend: str, workdir: Path) -> Contender:
    install_ccr()
    port = free_port()
    home = workdir / "ccr-home"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    config = {
        "LOG": False,
        "HOST": "127.0.0.1",
        "PORT": port,
        "API_TIMEOUT_MS": 600000,
        "Providers": [
            {
                "name": "fake",
                "api_base_url": f"{backend}/v1/chat/completions",
                "api_key": "sk-fake",
                "models": ["m-1", "m-50", "m-200", "m-idle", "m-paced"],
            }
        ],
        "Router": {"default": "fake,m-1"},
    }
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(config))
    (home / ".claude-code-router" / ".claude-code-router.pid").unlink(missing_ok=True)
    cli = (
        CACHE
        / f"ccr-{CCR_VERSION}"
        / "node_modules"
        / "@musistudio"
        / "claude-code-router"
        / "dist"
        / "cli.js"
    )
    log = (workdir / "ccr.log").open("wb")
    process = subprocess.Popen(
        ["node", str(cli), "start"],
        env={**os.environ, "HOME": str(home)},
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    contender = Contender(
        f"claude-code-router {CCR_VERSION}",
        f"http://127.0.0.1:{port}/v1/messages",
        process,
        model_small="fake,m-1",
        model_stream="fake,m-200",
        model_idle="fake,m-idle",
        route="fake,{}",
    )
    wait_http(f"http://127.0.0.1:{port}/", process, timeout=60)
    return contender
