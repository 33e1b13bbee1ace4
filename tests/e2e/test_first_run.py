"""A new user's first run: `make serve` with nothing configured and no backend running, then
the real `claude -p`. The CLI must stop at once with the backend and the fix named, not
retry for minutes; and `make serve` must not reinstall the environment it just synced."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import claude_path
from tests.fakes.server import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 15.0  # the bound: a subprocess timeout, not a timing assertion


def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_first_run_without_a_backend_fails_fast_with_the_fix(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = dict(os.environ)  # provider settings were cleared by the clean_env fixture
    # The default route (ollama on localhost:11434), moved to a port where nothing listens so a
    # developer's own Ollama cannot answer.
    env["OLLAMA_BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            ["make", "-s", "serve", f"SERVE_ARGS=--port {port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 120, "make serve")
        wait_for(lambda: "[FIX] ollama" in log.read_text(), 30, "the start-up probe's report")
        home = Path(tempfile.mkdtemp(prefix="ccgate-first-run-"))
        run = subprocess.run(
            [claude_path(), "-p", "say hi"],
            cwd=home,
            env={
                "PATH": os.environ["PATH"],
                "HOME": str(home),
                "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
                "ANTHROPIC_API_KEY": "anything",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
            },
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,  # the CLI's default 10 retries with back-off would pass this
        )
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
    shown = run.stdout + run.stderr
    assert run.returncode != 0
    assert "ollama" in shown and "ollama serve" in shown and "OLLAMA_BASE_URL" in shown, shown
    text = log.read_text()
    probe_line = next(line for line in text.splitlines() if "[FIX] ollama" in line)
    assert "connection refused" in probe_line and "ollama serve" in probe_line
    # One attempt reached the edge: the CLI did not retry (a 529 is retried several times).
    assert text.count("upstream ollama/") == 1, text
    for reinstall in ("Removed virtual environment", "Creating virtual environment", "Installed"):
        assert reinstall not in text, f"make serve reinstalled the environment:\n{text[:3000]}"
