"""`python -m ccgate.bot.guard ARGV…`: runs one Claude Code process for the worker and makes
sure nothing it started outlives the worker's interest in it.

The worker holds the guard's stdin. When it closes — the run is over, was stopped, or the
worker died, even by SIGKILL (the kernel closes its pipes) — the guard kills the CLI and every
process below it. The guard is a child subreaper (Linux), so the CLI's orphans come to it
rather than to init: Claude Code starts each Bash tool in a process group of its own, and those
would otherwise outlive a killed CLI.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
POLL = 0.2


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, everything below it, and the process groups they lead (tools run in
    groups of their own) — never the caller's own group."""
    _kill([pid, *descendants(pid)])


def _kill(pids: list[int]) -> None:
    own_group = os.getpgrp()
    for target in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(target)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


def _reap_orphans(keep: int) -> None:
    """Collect exited orphans handed to us as subreaper (not the CLI: Popen waits for that)."""
    for pid in descendants(os.getpid()):
        if pid != keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _clear_below_us(keep: int) -> None:
    """Kill and reap everything below the guard until nothing is left (bounded)."""
    for _ in range(50):
        below = [p for p in descendants(os.getpid()) if p != keep]
        if not below:
            return
        _kill(below)
        time.sleep(0.05)
        _reap_orphans(keep)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m ccgate.bot.guard COMMAND [ARGS…]", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    code: int | None = None
    while not stop:
        readable, _, _ = select.select([sys.stdin], [], [], POLL)
        if readable and not os.read(sys.stdin.fileno(), 4096):
            break  # the worker let go of us: the run is over, stopped, or the worker is gone
        code = child.poll()
        if code is not None:
            break
        _reap_orphans(child.pid)
    if code is None:
        kill_tree(child.pid)
        code = child.wait()
    _clear_below_us(child.pid)  # tool processes the CLI left behind
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
