"""A worker of `ccgate serve --workers N` ends when its supervisor does.

uvicorn's supervisor stops its workers on SIGTERM or SIGINT; one killed outright (SIGKILL, the
OOM killer) left them serving on the inherited socket with nothing to restart or stop them —
a gateway that looks stopped and still answers (and holds the port against a restart). Each
worker asks the kernel for a SIGTERM when its parent dies (Linux's `PR_SET_PDEATHSIG`), which
uvicorn's own handler turns into a graceful shutdown.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

SUPERVISOR_PID = "CCGATE_SUPERVISOR_PID"  # set by the supervisor, read by the workers it spawns
_PR_SET_PDEATHSIG = 1

log = logging.getLogger("ccgate.edge")


def mark_supervisor() -> None:
    """In the supervisor, before it spawns workers: they inherit the environment."""
    os.environ[SUPERVISOR_PID] = str(os.getpid())


def end_with_supervisor() -> None:
    """In a worker: a SIGTERM when the supervisor dies (or now, if it died already)."""
    supervisor = os.environ.get(SUPERVISOR_PID)
    if not supervisor or not sys.platform.startswith("linux"):
        return
    import ctypes  # here: a single-process gateway never loads it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        error = ctypes.get_errno()
        log.warning("worker %d cannot follow its supervisor: %s", os.getpid(), os.strerror(error))
        return
    if os.getppid() != int(supervisor):  # it died before the request above was made
        os.kill(os.getpid(), signal.SIGTERM)
