"""The real Claude Code CLI, interactive in a terminal (tmux), runs `ccgate statusline` as its
status line: the line shows the backend the session routes to, and after a prompt, the
caller's tokens today as the edge counted them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from ccgate.edge.statusline_command import compact, install_statusline, statusline_command
from tests.e2e.conftest import Harness, claude_path
from tests.fakes.backend import Turn

pytestmark = pytest.mark.e2e
KEY = "dummy-client-key"


class Terminal:
    """A tmux server of our own (its own socket) with one window of the given size."""

    def __init__(self, name: str) -> None:
        self.socket = name

    def tmux(self, *args: str) -> str:
        tmux = shutil.which("tmux")
        if tmux is None:
            pytest.fail("tmux is not installed: run `make test` (it installs it)")
        return subprocess.run(
            [tmux, "-L", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "cc")

    def wait_for(self, pattern: str, within: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = re.search(pattern, self.screen())
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"{pattern!r} never showed; the screen:\n{self.screen()}")


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(f"ccgate-test-{os.getpid()}-{time.monotonic_ns()}")
    yield term
    try:
        term.tmux("kill-server")
    except subprocess.CalledProcessError:
        pass


def test_claude_code_shows_the_ccgate_status_line(
    harness_factory: Callable[..., Harness], terminal: Terminal
) -> None:
    h = harness_factory("openai")
    # A first run's dialogs answered beforehand: onboarding, folder trust, the API key.
    (h.home / ".claude.json").write_text(
        json.dumps(
            {
                "hasCompletedOnboarding": True,
                "theme": "dark",
                "projects": {str(h.workspace): {"hasTrustDialogAccepted": True}},
                "customApiKeyResponses": {"approved": [KEY[-20:]], "rejected": []},
            }
        )
    )
    install_statusline(h.home / ".claude" / "settings.json", statusline_command())
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in h.env(TERM="xterm-256color").items())
    command = f"cd {shlex.quote(str(h.workspace))} && exec env -i {env} {claude_path()}"
    terminal.tmux("new-session", "-d", "-s", "cc", "-x", "160", "-y", "40", command)
    terminal.wait_for(r"ccgate → openai_compat/fake-model")

    h.backend.default = Turn(text="hello from the fake backend")
    terminal.tmux("send-keys", "-t", "cc", "say hi", "Enter")
    terminal.wait_for(r"hello from the fake backend")
    rows = asyncio.run(h.app.state.gateway.usage.rows(None, datetime.now(UTC).date()))
    tokens = sum(r.input_tokens + r.output_tokens for r in rows)
    assert tokens > 0 and len({r.key for r in rows}) == 1, rows
    # The session's caller, found by its session id, and exactly the edge's count.
    terminal.wait_for(
        rf"ccgate → openai_compat/fake-model · .* · {re.escape(compact(tokens))} tokens today"
    )
