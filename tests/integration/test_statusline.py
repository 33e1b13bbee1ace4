"""`ccgate statusline` fed the JSON the pinned Claude Code CLI really sends its status line
(tests/fixtures/statusline_input.json, captured from 2.1.332), against a live edge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from ccgate.edge.statusline import quota_state
from ccgate.edge.statusline_command import install_statusline, statusline_command
from tests.conftest import Edge, backend_env
from tests.e2e.conftest import claude_path
from tests.fakes.backend import FakeBackend

FIXTURE = Path(__file__).parents[1] / "fixtures" / "statusline_input.json"
SESSION = json.loads(FIXTURE.read_text())


def run_statusline(edge_url: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ccgate.cli", "statusline"],
        input=FIXTURE.read_text(),
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent", "ANTHROPIC_BASE_URL": edge_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def message(**headers: str) -> dict[str, object]:
    return {"json": {"model": SESSION["model"]["id"], "max_tokens": 20,
                     "messages": [{"role": "user", "content": "hi"}]}, "headers": headers}  # fmt: skip


def test_statusline_shows_backend_quota_and_the_keys_tokens_today(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(backend_env(backend, CCGATE_API_KEYS="ana:sk-ana-1,bo:sk-bo-2"))
    assert (
        httpx.post(edge.url + "/v1/messages", **message(**{"x-api-key": "sk-ana-1"})).status_code
        == 200
    )  # type: ignore[arg-type]
    ana = run_statusline(edge.url, ANTHROPIC_API_KEY="sk-ana-1")
    assert ana.startswith("ccgate → openai_compat/fake-model · ")
    assert "0/50 in flight, 999/1000 left" in ana and ana.endswith("168 tokens today"), ana
    assert run_statusline(edge.url, ANTHROPIC_API_KEY="sk-bo-2").endswith("0 tokens today")
    assert "401" in run_statusline(edge.url, ANTHROPIC_API_KEY="wrong")


def test_statusline_without_keys_finds_the_caller_by_session(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge]
) -> None:
    edge = edge_factory(backend_env(backend))
    sent = httpx.post(
        edge.url + "/v1/messages", **message(**{"x-claude-code-session-id": SESSION["session_id"]})
    )  # type: ignore[arg-type]
    assert sent.status_code == 200
    assert run_statusline(edge.url).endswith("168 tokens today")
    assert "no answer" in run_statusline("http://127.0.0.1:9")


def test_quota_state_says_queueing_and_paused() -> None:
    assert quota_state(None)["state"] == "idle"
    assert quota_state({"in_flight": 5, "queue_depth": {"a": 2}})["state"] == "queueing"
    assert quota_state({"paused_for": 3.2, "queued": 1})["state"] == "paused"


def test_install_keeps_a_foreign_status_line_and_ccgate_code_installs(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"statusLine": {"type": "command", "command": "mine"}, "x": 1}))
    assert "left as it is" in install_statusline(settings, statusline_command())
    assert "installed" in install_statusline(settings, statusline_command(), force=True)
    written = json.loads(settings.read_text())
    assert written["x"] == 1 and written["statusLine"]["command"] == statusline_command()
    config = tmp_path / "claude-config"
    ran = subprocess.run(
        [sys.executable, "-m", "ccgate.cli", "code", "--install-statusline", "--version"],
        env={**os.environ, "CLAUDE_CONFIG_DIR": str(config), "CLAUDE_BIN": claude_path()},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "(Claude Code)" in ran.stdout  # the real CLI ran after the install
    line = json.loads((config / "settings.json").read_text())["statusLine"]
    assert line == {"type": "command", "command": statusline_command(), "padding": 0}
