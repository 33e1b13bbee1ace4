"""Each chat user works in their own directory below CLAUDE_WORKSPACE; nothing resolves outside
it — no `..`, no absolute paths, no symlink that leads out."""

from __future__ import annotations

import re
from pathlib import Path

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class WorkspaceError(ValueError):
    pass


def user_root(base: str | Path, platform: str, user_id: str | int) -> Path:
    name = f"{platform}-{user_id}"
    if not _SAFE.match(name):
        raise WorkspaceError(f"unusable user id {user_id!r}")
    root = Path(base).resolve() / name
    root.mkdir(parents=True, exist_ok=True)
    return root


def project_dir(root: Path, project: str | None) -> Path:
    """The user's project directory, created if needed and confined to their root."""
    if not project or project == ".":
        path = root / "default"
    else:
        if not _SAFE.match(project) or project in ("..", "."):
            raise WorkspaceError(
                "a project name is letters, digits, '.', '_' or '-', up to 64 characters"
            )
        path = root / project
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise WorkspaceError("that project path leads outside your workspace")
    resolved.mkdir(parents=True, exist_ok=True)
    if not resolved.resolve().is_relative_to(root.resolve()):  # a symlink created meanwhile
        raise WorkspaceError("that project path leads outside your workspace")
    return resolved


def home_dir(root: Path) -> Path:
    """Claude Code's HOME for this user: its sessions (for --resume) and its device id live here."""
    home = root / ".home"
    home.mkdir(parents=True, exist_ok=True)
    return home


def list_projects(root: Path) -> list[str]:
    """The user's project directories (not their Claude Code home)."""
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and _SAFE.match(p.name) and p.name != ".home"
    )
