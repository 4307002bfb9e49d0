"""A new worktree made ready for its tool: untracked files brought in, ``setup:`` run.

Set-up belongs to the worktree, not to the attempt: it runs once in a new
worktree and again after a fresh retry resets it, but not when a plain retry or
a resumed run takes the same worktree up again. The worktree's git dir keeps a
marker (``SETUP_DONE``) written only when every command passed, so a set-up cut
short by a failure or a crash runs again next time.

Each command runs in its own process session like a check, with its timeout,
its output appended to the attempt's log under a header; a failing one fails
the workstream before its tool starts, its last lines the reason. ``teardown:``
runs when ``clean`` removes the worktree, with the ports its last attempt had.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
from asyncio import FIRST_COMPLETED
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import MissionControlError
from ..git.repo import worktree_file
from ..git.untracked import INCLUDE_FILE, bring_untracked
from ..plan.model import Check, Workstream
from .finish import append_log
from .ports import fill_port, port_env
from .supervisor import spawn_attempt

SETUP_DONE = "mission-control-setup"
"""In the worktree's git dir: set-up (files and commands) finished here."""

TAIL_LINES = 5
"""How many of a failed command's last lines make its reason."""


def has_include_file(ws: Workstream) -> bool:
    """The repository names files to bring in ``.worktreeinclude`` (blocking)."""
    return (ws.repo / INCLUDE_FILE).is_file()


class SetupFailed(MissionControlError):
    """A set-up command failed: the workstream fails before its tool starts."""


async def set_up_worktree(
    ws: Workstream,
    worktree: Path,
    *,
    fresh: bool,
    env: Mapping[str, str],
    ports: Sequence[int],
    log_path: Path,
    stop: asyncio.Event | None,
    grace: float,
    included: bool = False,
    bring_files: bool = True,
) -> None:
    """Bring files and run ``setup:`` in ``worktree`` unless done there already.

    ``fresh``: the worktree was just reset to its base, so set-up runs again.
    ``included``: the repository has a ``.worktreeinclude`` (``has_include_file``).
    ``bring_files=False`` where the repository's checkout is not at hand (a cluster node).
    Raises ``SetupFailed`` naming the command and its last lines.
    """
    files = bring_files and bool(ws.copy_files or ws.link_files or included)
    if not (fresh or ws.setup or files):
        return  # nothing to set up, nothing to undo: no trip to a thread
    marker = await asyncio.to_thread(worktree_file, worktree, SETUP_DONE)
    if fresh:
        await asyncio.to_thread(_remove, marker)
    if not (ws.setup or files):
        return
    if await asyncio.to_thread(marker.exists):
        await _log(log_path, "──── set-up: done before in this worktree (a fresh retry runs it)\n")
        return
    if files:
        brought = await asyncio.to_thread(
            bring_untracked, ws.repo, worktree, ws.copy_files, ws.link_files
        )
        for line in brought.lines():
            await _log(log_path, line + "\n")
    for command in ws.setup:
        if stop is not None and stop.is_set():
            raise MissionControlError(f"{ws.task_id}: stopped during set-up")
        await _run_setup_command(ws, command, worktree, env, ports, log_path, stop, grace)
    await asyncio.to_thread(marker.write_text, "done\n", encoding="utf-8")


async def _run_setup_command(
    ws: Workstream,
    command: Check,
    worktree: Path,
    env: Mapping[str, str],
    ports: Sequence[int],
    log_path: Path,
    stop: asyncio.Event | None,
    grace: float,
) -> None:
    what = f"{ws.task_id}: set-up '{command.name}'"
    argv = fill_port(command.argv, ports, what)
    shown = argv[0] if command.shell else shlex.join(argv)
    if command.shell:
        argv = ["/bin/sh", "-c", argv[0]]
    limit = command.timeout_minutes * 60
    await _log(log_path, f"\n──── set-up '{command.name}': {shown} (timeout {limit:g}s) ────\n")
    start = await asyncio.to_thread(_size, log_path)
    try:
        proc = await asyncio.to_thread(
            spawn_attempt,
            argv,
            cwd=worktree,
            env=dict(env),
            log_path=log_path,
            stdin_path=None,
            exit_file=log_path.with_name(f"{log_path.stem}.setup.exit"),
        )
    except OSError as err:
        raise SetupFailed(f"{what} could not start: {err.strerror or err}") from None
    waiting = asyncio.ensure_future(proc.wait())
    stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        await asyncio.wait(
            {waiting} | ({stopping} if stopping else set()),
            timeout=limit,
            return_when=FIRST_COMPLETED,
        )
    finally:
        if stopping is not None:
            stopping.cancel()
    if not waiting.done():
        await proc.terminate(grace)
        waiting.cancel()
        if stop is not None and stop.is_set():
            raise MissionControlError(f"{ws.task_id}: stopped during set-up")
        reason = f"{ws.task_id}: set-up '{command.name}' timed out after {limit:g}s"
    else:
        status = waiting.result()
        if status.exit_code == 0:
            await _log(log_path, f"──── set-up '{command.name}' ok\n")
            return
        reason = f"{ws.task_id}: set-up '{command.name}' {status.describe()}"
    tail = await asyncio.to_thread(_tail, log_path, start)
    await _log(log_path, f"──── set-up FAILED: {reason}\n")
    raise SetupFailed(f"{reason}: {tail}" if tail else f"{reason} (no output)")


def run_teardown(ws: Workstream, worktree: Path, ports: Sequence[int]) -> list[str]:
    """Run ``teardown:`` in ``worktree`` (blocking); one line per command that failed."""
    failures: list[str] = []
    env = {**os.environ, **ws.env, "MC_WORKTREE": str(worktree), **port_env(ports)}
    for command in ws.teardown:
        what = f"teardown '{command.name}'"
        try:
            argv = fill_port(command.argv, ports, f"{ws.task_id}: {what}")
        except MissionControlError as err:
            failures.append(str(err))
            continue
        if command.shell:
            argv = ["/bin/sh", "-c", argv[0]]
        try:
            proc = subprocess.Popen(
                argv,
                cwd=worktree,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as err:
            failures.append(f"{what} could not start: {err.strerror or err}")
            continue
        try:
            out, _ = proc.communicate(timeout=command.timeout_minutes * 60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            failures.append(f"{what} timed out: {_last_lines(out)}")
            continue
        if proc.returncode != 0:
            failures.append(f"{what} exited with {proc.returncode}: {_last_lines(out)}")
    return failures


def _last_lines(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-TAIL_LINES:]) or "(no output)"


def _tail(log_path: Path, start: int) -> str:
    try:
        with log_path.open("rb") as f:
            f.seek(max(start, os.path.getsize(log_path) - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    text = _last_lines(data)
    return "" if text == "(no output)" else text


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _log(log_path: Path, text: str) -> None:
    await asyncio.to_thread(append_log, log_path, text)
