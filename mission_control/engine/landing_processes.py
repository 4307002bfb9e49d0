"""The processes a landing runs in its worktree: the plan's checks and a resolving tool.

Each runs in a session of its own with its output appended to the landing's log,
and is stopped as a whole process group (TERM, a grace, KILL) at its timeout. A
landing waits for each one before it goes on, so these block: the command runs
them in its own thread of control, the engine from a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..plan.model import Check, Workstream
from ..store.private import append_private, open_private

TAIL_LINES = 12
"""How many of a failed check's last lines its report carries."""

_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ProcessEnd:
    ok: bool
    line: str
    """One line: what ended how (``check 'tests' exited with code 1``)."""
    tail: tuple[str, ...]
    """The last lines it printed."""


def landing_checks(workstreams: Sequence[Workstream]) -> list[Check]:
    """The checks of the landed workstreams, each once, in plan order.

    Checks usually sit under the plan's ``defaults:``, so this is that one list;
    a workstream's own checks join it.
    """
    seen: set[tuple[tuple[str, ...], bool]] = set()
    checks: list[Check] = []
    for ws in workstreams:
        for check in ws.checks:
            key = (tuple(check.argv), check.shell)
            if key not in seen:
                seen.add(key)
                checks.append(check)
    return checks


def run_check(check: Check, worktree: Path, log_path: Path, env: Mapping[str, str]) -> ProcessEnd:
    """Run one check in the landing's worktree."""
    argv = ["/bin/sh", "-c", check.argv[0]] if check.shell else list(check.argv)
    shown = check.argv[0] if check.shell else shlex.join(check.argv)
    return run_logged(
        argv,
        f"check '{check.name}'",
        shown,
        cwd=worktree,
        log_path=log_path,
        env=env,
        timeout=check.timeout_minutes * 60,
    )


def run_logged(
    argv: Sequence[str],
    what: str,
    shown: str,
    *,
    cwd: Path,
    log_path: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin_path: Path | None = None,
) -> ProcessEnd:
    """Run ``argv`` in ``cwd`` with its output appended to ``log_path``; wait for its end."""
    append_private(log_path, f"──── {what}: {shown} ────\n".encode())
    start = log_path.stat().st_size
    fd = open_private(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    stdin = open(stdin_path, "rb") if stdin_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **env},
            stdin=stdin,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as err:
        return ProcessEnd(False, f"{what} could not start: {err.strerror or err}", ())
    finally:
        os.close(fd)
        if not isinstance(stdin, int):
            stdin.close()
    started = time.monotonic()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        line = f"{what} timed out after {timeout:.0f}s"
    except BaseException:
        _stop_group(proc)  # Ctrl-C: its own session would not hear it, and must not outlive us
        raise
    else:
        if code == 0:
            line = f"{what} passed ({time.monotonic() - started:.1f}s)"
        elif code < 0:
            line = f"{what} was killed by signal {-code}"
        else:
            line = f"{what} exited with code {code}"
    ok = proc.returncode == 0
    tail = () if ok else _tail(log_path, start)
    append_private(log_path, f"──── {line}\n".encode())
    return ProcessEnd(ok, line, tail)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(log_path: Path, start: int) -> tuple[str, ...]:
    """The last lines written to the log since ``start``, control codes dropped."""
    try:
        with open(log_path, "rb") as log:
            log.seek(max(start, log_path.stat().st_size - 64 * 1024))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ()
    lines = [
        "".join(c for c in line if c.isprintable() or c == "\t").rstrip()
        for line in text.splitlines()
    ]
    return tuple(line for line in lines if line)[-TAIL_LINES:]
