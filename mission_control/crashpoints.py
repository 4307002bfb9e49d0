"""Named places where a crash test can stop mission-control dead.

Crash safety is only as good as the worst moment to die, and random kills rarely
land inside a worktree's creation or between a commit and its push. Each step
that leaves something half-done on disk calls ``reach(name)``; with
``MC_CRASH_AT=name`` (or ``name@N`` for the N-th time it is reached) in the
environment, the process SIGKILLs itself there, exactly as a power cut or an
OOM kill would stop it. Unset, ``reach`` is one comparison.

The variable is read once and taken out of the environment, so nothing this
process starts (agents, a background driver, git) inherits it.
"""

from __future__ import annotations

import os
import signal
import threading

_ENV = "MC_CRASH_AT"


def _parse(spec: str) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, count = spec.partition("@")
    try:
        return name, max(1, int(count)) if count else 1
    except ValueError:
        return name, 1


_target = _parse(os.environ.pop(_ENV, ""))
_seen = 0
_lock = threading.Lock()


def reach(name: str) -> None:
    """Die here if a crash test asked for it (a no-op otherwise)."""
    global _seen
    if _target is None or _target[0] != name:
        return
    with _lock:
        _seen += 1
        if _seen >= _target[1]:
            os.kill(os.getpid(), signal.SIGKILL)
