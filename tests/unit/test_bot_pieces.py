"""The bot's pure pieces: stream-json progress, and workspace confinement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccgate.bot.jobs import describe
from ccgate.bot.queue import STEP_MS, fair_score_ms
from ccgate.bot.streamjson import Finished, Started, Text, Thinking, ToolUse, parse_line
from ccgate.bot.workspace import WorkspaceError, project_dir, user_root


def test_stream_json_events_become_progress_items() -> None:
    assert parse_line(json.dumps({"type": "system", "subtype": "init", "session_id": "s1"})) == [
        Started("s1")
    ]
    assistant = {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "thinking", "thinking": "plan  the\nwork"},
                {"type": "text", "text": "On it."},
                {
                    "type": "tool_use",
                    "name": "Bash",
                    "input": {"command": "ls -la", "description": "list"},
                },
                {"type": "tool_use", "name": "Custom", "input": {"x": 1}},
            ]
        },
    }
    items = parse_line(json.dumps(assistant))
    assert items == [
        Thinking("plan the work"),
        Text("On it."),
        ToolUse("Bash", "ls -la"),
        ToolUse("Custom", '{"x":1}'),
    ]
    assert describe(items[2]) == ("tool", "🔧 Bash: ls -la")
    result = {
        "type": "result",
        "session_id": "s1",
        "result": "Done",
        "is_error": False,
        "permission_denials": [{"tool_name": "Bash"}],
    }
    assert parse_line(json.dumps(result)) == [Finished("s1", "Done", False, ("Bash",))]
    assert parse_line("not json") == [] and parse_line("[1]") == []


def test_workspaces_are_confined(tmp_path: Path) -> None:
    root = user_root(tmp_path, "telegram", 42)
    assert root == (tmp_path / "telegram-42").resolve()
    assert project_dir(root, None) == root / "default"
    assert project_dir(root, "api") == root / "api"
    for bad in ("..", "../x", "/etc", "a/b", "x" * 65):
        with pytest.raises(WorkspaceError):
            project_dir(root, bad)
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(WorkspaceError):
        project_dir(root, "escape")
    with pytest.raises(WorkspaceError):
        user_root(tmp_path, "telegram", "../../etc")


# -- the guard: real processes, no Claude Code needed ---------------------------------------
WAIT = "python3 -c 'import select; select.select([], [], [], 300)'"


def _alive(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def _gone_within(marker: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _wait_alive(*markers: str) -> None:
    deadline = time.monotonic() + 10
    while not all(_alive(m) for m in markers):
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.05)


def test_the_guard_ends_the_whole_tree_when_its_worker_lets_go() -> None:
    marker = f"ccgate-guard-a-{os.getpid()}"
    # A tool in a session of its own (as Claude Code starts Bash tools) and a plain child.
    script = f"setsid {WAIT} {marker}-tool & {WAIT} {marker}-cli"
    guard = subprocess.Popen(
        [sys.executable, "-m", "ccgate.bot.guard", "bash", "-c", script], stdin=subprocess.PIPE
    )
    _wait_alive(f"{marker}-tool", f"{marker}-cli")
    assert guard.stdin is not None
    guard.stdin.close()
    guard.wait(10)
    assert _gone_within(marker, 5)


def test_the_guard_ends_the_tree_when_its_worker_is_killed() -> None:
    marker = f"ccgate-guard-b-{os.getpid()}"
    script = f"setsid {WAIT} {marker}-tool & {WAIT} {marker}-cli"
    worker_code = (
        "import subprocess, sys, time;"
        f"subprocess.Popen([sys.executable, '-m', 'ccgate.bot.guard', 'bash', '-c', {script!r}],"
        " stdin=subprocess.PIPE); time.sleep(300)"
    )
    worker = subprocess.Popen([sys.executable, "-c", worker_code])
    _wait_alive(f"{marker}-tool", f"{marker}-cli")
    worker.send_signal(signal.SIGKILL)  # no cleanup of its own; the kernel closes its pipes
    worker.wait(10)
    assert _gone_within(marker, 5)


def test_the_guard_passes_the_exit_code_and_clears_leftovers() -> None:
    marker = f"ccgate-guard-c-{os.getpid()}"
    script = f"(setsid {WAIT} {marker}-tool &) ; sleep 0.5; exit 3"
    guard = subprocess.Popen(  # stdin held open: the worker is still waiting for the run
        [sys.executable, "-m", "ccgate.bot.guard", "bash", "-c", script], stdin=subprocess.PIPE
    )
    assert guard.wait(20) == 3
    assert _gone_within(marker, 5)


def test_fair_scores_put_a_users_later_jobs_behind_others_first_ones() -> None:
    now = 10**13
    first_of_ana, second_of_ana = fair_score_ms(now, 0), fair_score_ms(now, 1)
    first_of_bob_later = fair_score_ms(now + 60_000, 0)
    assert first_of_ana < first_of_bob_later < second_of_ana
    assert fair_score_ms(now, 10**6) <= now  # never in the future: arq would hold it back
    # No starvation: after one step of real time, Ana's second job outranks Bob's new first.
    assert second_of_ana < fair_score_ms(now + STEP_MS + 1, 0)
