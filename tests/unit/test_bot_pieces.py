"""The bot's pure pieces: stream-json progress, and workspace confinement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ccgate.bot.fronts.core import split
from ccgate.bot.fronts.markdown import FENCE_ROOM, balanced, telegram_html
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


# -- Markdown for the chat platforms ----------------------------------------------------------
TELEGRAM_TAGS = {"b", "i", "u", "s", "code", "pre", "a", "blockquote", "tg-spoiler"}


class _TagChecker(HTMLParser):
    """Telegram's parser is strict: only its tags, properly nested, entities escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in TELEGRAM_TAGS, tag
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, tag


def _check_telegram_html(text: str) -> None:
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []


def test_markdown_becomes_the_html_telegram_renders() -> None:
    answer = (
        "## Plan\n"
        "Use **asyncio** and `a < b && c`; see [the docs](https://docs.python.org/?a=1&b=2).\n"
        "```python\nif x < 1 and y > 2:\n    print('<b>not a tag</b>')\n```\n"
        "Done & dusted."
    )
    out = telegram_html(answer)
    _check_telegram_html(out)
    assert "<b>Plan</b>" in out and "<b>asyncio</b>" in out
    assert "<code>a &lt; b &amp;&amp; c</code>" in out
    assert '<a href="https://docs.python.org/?a=1&amp;b=2">the docs</a>' in out
    assert '<pre><code class="language-python">if x &lt; 1 and y &gt; 2:' in out
    assert "&lt;b&gt;not a tag&lt;/b&gt;" in out  # nothing inside code renders
    assert out.endswith("Done &amp; dusted.")
    assert telegram_html("2 * 3 ** 4 and a_b_c") == "2 * 3 ** 4 and a_b_c"  # no stray marks


def test_a_code_block_split_across_pieces_stays_a_code_block_in_each() -> None:
    code = "\n".join(f"line {i} = {i} * 2" for i in range(400))
    answer = f"Here:\n```python\n{code}\n```\nThat is all."
    pieces = balanced(split(answer, 2000 - FENCE_ROOM))
    assert len(pieces) > 2 and all(len(p) <= 2000 for p in pieces)
    for piece in pieces:
        assert piece.count("```") % 2 == 0  # every piece opens and closes its fences
        _check_telegram_html(telegram_html(piece))
    assert pieces[1].startswith("```python\n")
    assert "That is all." in pieces[-1]


def test_quotes_become_expandable_blockquotes() -> None:
    out = telegram_html("> 💭 weighing <a> & <b>\n> still thinking\nThen the **answer**.")
    _check_telegram_html(out)
    assert out == (
        "<blockquote expandable>💭 weighing &lt;a&gt; &amp; &lt;b&gt;\nstill thinking"
        "</blockquote>\nThen the <b>answer</b>."
    )
