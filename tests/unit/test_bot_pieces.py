"""The bot's pure pieces: stream-json progress, and workspace confinement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccgate.bot.jobs import describe
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
