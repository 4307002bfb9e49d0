"""Start, watch, pause and stop an attempt's whole process tree.

Why it has this shape:

* Each attempt runs as ``/bin/sh -c WRAPPER EXIT_FILE ARGV...`` in a session of
  its own. The tiny shell runs the tool, then writes the tool's exit status to
  ``EXIT_FILE``: a later mission-control (after a crash of this one) can learn
  the status of a process it did not spawn, which ``waitpid`` cannot tell it.
  The shell traps TERM, so a TERM sent to the tree still lets it record the
  tool's end. stdout and stderr go straight to the log file: mission-control is
  never in the data path.
* An attempt's tree is found by parent links, the session id, pids seen
  earlier and an inherited environment token (``attempt_tree.py``).
* ``wait()`` is event-driven: a pidfd on the loop's selector wakes it when the
  process ends; no polling sleep. Without pidfds, a thread blocks in waitpid.
  While ``terminate`` is at work, ``wait()`` also waits for it to finish: the
  shell ends with the tool, and the rest of the tree must be gone by then too.
* Orphans of attempts reparented to us are reaped by pid (``reaping.py``);
  exit statuses are plain values (``exit_status.py``), waiting for a set of
  processes to end is one ``poll`` over pidfds (``pidfds.py``).

Blocking methods (``pause``, ``resume``, ``members``, ``poll``) are safe in worker
threads; ``wait`` and ``terminate`` are coroutines for the engine's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from ..store.private import make_private_dir, open_private_in
from .attempt_tree import TOKEN_VAR, AttemptTree
from .exit_status import UNKNOWN, ExitStatus, TerminateResult, decode_status, read_exit_file
from .pidfds import close_quietly, open_pidfd, wait_gone
from .process_tree import is_alive, open_process, same_start, signal_all
from .reaping import (
    enable_subreaper,
    forget_spawned,
    reap_if_our_child,
    reap_orphans,
    register_spawned,
    spawned_popen,
)

__all__ = [
    "TOKEN_VAR",
    "UNKNOWN",
    "AttemptProcess",
    "ExitStatus",
    "TerminateResult",
    "adopt",
    "decode_status",
    "enable_subreaper",
    "read_exit_file",
    "reap_orphans",
    "spawn_attempt",
]
"""What callers import from here; the value types and reaping live in modules of their own."""

_WRAPPER = """f=$1; shift
{ echo 10 > /proc/self/autogroup; } 2>/dev/null
trap : HUP INT TERM
"$@"
rc=$?
umask 077
printf '%s\\n' "$rc" > "$f"
exit "$rc"
"""
# The exit file is private like the rest of the state folder (``umask 077``): the
# tool has ended, so the umask it inherited is left as the user set it.
# ``trap :`` (a handler, not an ignore) is reset to the default in the tool, and
# makes the shell wait for the tool, record its status, then exit. On Linux every
# session is a scheduling group of its own, so an attempt's group gets nice 10: a
# machine full of busy agents still leaves the screen and the user's work responsive.


_KILL_WAIT = 5.0
"""Seconds to wait for the tree to vanish after SIGKILL before calling anything a survivor."""


# ---------------------------------------------------------------------- the attempt


class AttemptProcess:
    """One attempt's process tree, spawned by us or adopted after a restart."""

    def __init__(
        self,
        pid: int,
        create_time: float,
        exit_file: Path,
        *,
        popen: subprocess.Popen[bytes] | None,
        token: str | None,
        pidfd: int | None,
    ) -> None:
        self.pid = pid
        self.create_time = create_time
        self.exit_file = exit_file
        self._popen = popen
        self._tree = AttemptTree(pid, create_time, token)
        self._control = threading.Lock()
        """Serialises pause, resume and terminate."""
        self._stopped: list[psutil.Process] = []
        self._paused = False
        self._killed_root = False
        self._status: ExitStatus | None = None
        self._future: asyncio.Future[ExitStatus] | None = None
        self._pidfd = pidfd
        self._pidfd_watched = False
        """True while the loop's selector holds the pidfd: it must not be closed then."""
        self._pidfd_lock = threading.Lock()
        self._stops: set[concurrent.futures.Future[None]] = set()
        """Terminations under way (guarded by ``_pidfd_lock``): ``wait`` outlasts them."""
        self._finalizer = weakref.finalize(self, close_quietly, pidfd)

    def __repr__(self) -> str:
        kind = "child" if self._popen is not None else "adopted"
        return f"<AttemptProcess pid={self.pid} {kind} status={self._status}>"

    # ------------------------------------------------------------------ facts

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def status(self) -> ExitStatus | None:
        """The exit status once known (after ``wait``, ``poll`` or ``terminate``)."""
        return self._status

    # ------------------------------------------------------------------ status

    def poll(self) -> ExitStatus | None:
        """The exit status if the attempt has ended, else None (blocking: small file read)."""
        if self._status is not None:
            return self._status
        if self._popen is not None:
            code = self._popen.poll()
            if code is None:
                return None
            return self._set_status(decode_status(code))
        if self._tree.root is not None and is_alive(self._tree.root):
            return None
        reap_if_our_child(self.pid, self.create_time)
        return self._set_status(self._adopted_status())

    def _adopted_status(self) -> ExitStatus:
        recorded = read_exit_file(self.exit_file)
        if recorded is not None:
            return recorded
        if self._killed_root:
            return ExitStatus(None, signal.SIGKILL)
        return UNKNOWN

    def _set_status(self, status: ExitStatus) -> ExitStatus:
        with self._pidfd_lock:
            if self._status is None:
                self._status = status
                forget_spawned(self.pid)
                if not self._pidfd_watched:
                    self._close_pidfd_locked()
            return self._status

    def _close_pidfd_locked(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            self._finalizer.detach()
            close_quietly(fd)

    def _collect_blocking(self) -> ExitStatus:
        """After the root has ended: reap it (our child) or read its exit file."""
        if self._popen is not None:
            return self._set_status(decode_status(self._popen.wait()))
        status = self.poll()
        if status is None:  # the pidfd is missing or woke us early: block for real
            assert self._tree.root is not None
            with contextlib.suppress(psutil.Error):
                self._tree.root.wait()
            status = self._set_status(self._adopted_status())
        return status

    async def wait(self) -> ExitStatus:
        """Wait for the attempt to end, woken by the kernel (no polling).

        The attempt ends when its root process does, or, while ``terminate`` is
        at work, when that is done: the root dies with the tool, possibly before
        the rest of the tree, and a caller that takes the attempt for over must
        not find its processes still running. Safe to call many times and to
        cancel (``asyncio.wait_for``): the watch stays armed, so the root is
        still reaped when it ends.
        """
        status = await self._root_ended()
        while stops := self._stops_under_way():
            for stop in stops:
                await asyncio.shield(asyncio.wrap_future(stop))
        return status

    def _stops_under_way(self) -> list[concurrent.futures.Future[None]]:
        with self._pidfd_lock:
            return list(self._stops)

    async def _root_ended(self) -> ExitStatus:
        loop = asyncio.get_running_loop()
        with self._pidfd_lock:
            if self._status is not None:
                return self._status
            future = self._future
            if future is None or future.done() or future.get_loop() is not loop:
                future = self._future = loop.create_future()
                fd = self._pidfd
                if fd is not None and not self._pidfd_watched:
                    self._pidfd_watched = True
                    loop.add_reader(fd, self._on_pidfd_ready, loop, fd, future)
                else:
                    task = loop.create_task(asyncio.to_thread(self._collect_blocking))
                    task.add_done_callback(lambda t: _settle(future, t))
        return await asyncio.shield(future)

    def _on_pidfd_ready(
        self, loop: asyncio.AbstractEventLoop, fd: int, future: asyncio.Future[ExitStatus]
    ) -> None:
        """The root has ended (a pidfd turns readable on exit): collect it off the loop."""
        loop.remove_reader(fd)
        with self._pidfd_lock:
            self._pidfd_watched = False
            if self._status is not None:
                self._close_pidfd_locked()
        task = loop.create_task(asyncio.to_thread(self._collect_blocking))
        task.add_done_callback(lambda t: _settle(future, t))

    # ------------------------------------------------------------------- tree

    def members(self, our_children: Sequence[int] | None = None) -> list[psutil.Process]:
        """The tree as a cheap pass finds it, for once-a-second sampling (blocking).

        It follows child lists from the root and from processes seen before,
        and looks at ``our_children`` (default: read now) for reparented orphans,
        but does not scan every process on the machine as ``tree`` does.
        """
        return self._tree.scan(full=False, our_children=our_children)

    # ------------------------------------------------------------ pause/resume

    def pause(self) -> list[int]:
        """SIGSTOP every process of the tree; the pids stopped (blocking).

        Parents are stopped before their children and the tree is scanned
        again until nothing new appears: a stopped parent cannot fork, so no
        child is born after the scan that would have found it.
        """
        with self._control:
            stopped: dict[int, psutil.Process] = {p.pid: p for p in self._stopped}
            for _ in range(20):
                fresh = [p for p in self._tree.scan(full=True) if p.pid not in stopped]
                if not fresh:
                    break
                for proc in fresh:
                    if signal_all([proc], signal.SIGSTOP):
                        stopped[proc.pid] = proc
            self._stopped = list(stopped.values())
            self._paused = True
            return [p.pid for p in self._stopped]

    def resume(self) -> list[int]:
        """SIGCONT every process of the tree, children before parents; the pids continued."""
        with self._control:
            procs: dict[int, psutil.Process] = {p.pid: p for p in self._tree.scan(full=True)}
            for proc in self._stopped:
                procs.setdefault(proc.pid, proc)
            # Children first: a parent that wakes up finds its children running.
            sent = signal_all(reversed(list(procs.values())), signal.SIGCONT)
            self._stopped = []
            self._paused = False
            return sent

    # --------------------------------------------------------------- terminate

    async def terminate(self, grace: float) -> TerminateResult:
        """TERM the tree, wait up to ``grace`` s, KILL what is left, verify none remains."""
        return await asyncio.to_thread(self.terminate_blocking, grace)

    def terminate_blocking(self, grace: float) -> TerminateResult:
        """``terminate`` for a worker thread."""
        stop: concurrent.futures.Future[None] = concurrent.futures.Future()
        stop.set_running_or_notify_cancel()  # nobody may cancel it: wait() relies on it
        with self._pidfd_lock:
            self._stops.add(stop)
        try:
            return self._terminate_tree(grace)
        finally:
            with self._pidfd_lock:
                self._stops.discard(stop)
            stop.set_result(None)

    def _terminate_tree(self, grace: float) -> TerminateResult:
        with self._control:
            procs = self._tree.scan(full=True)
            terminated = signal_all(procs, signal.SIGTERM)
            # A stopped process only handles its TERM once continued.
            signal_all(procs, signal.SIGCONT)
            self._stopped = []
            self._paused = False
            if procs and grace > 0:
                wait_gone(procs, grace)
            killed: list[int] = []
            for _ in range(3):
                left = self._tree.scan(full=True)
                if not left:
                    break
                killed.extend(self._kill(left))
            survivors = [p.pid for p in self._tree.scan(full=True)]
        self.poll()
        reap_orphans()
        return TerminateResult(
            terminated=tuple(terminated),
            killed=tuple(dict.fromkeys(killed)),
            survivors=tuple(survivors),
            status=self._status,
        )

    def _kill(self, procs: list[psutil.Process]) -> list[int]:
        """SIGKILL from the outside in: the tool's descendants, the tool, then the shell.

        The shell records the tool's end and exits as soon as the tool dies, and
        that is when the attempt looks over; so the tool dies only after the
        rest of its tree is gone, and the shell last.
        """
        others = [p for p in procs if p.pid != self.pid]
        root = [p for p in procs if p.pid == self.pid]
        parents = {p.pid: _parent(p) for p in others}
        tools = [p for p in others if parents[p.pid] == self.pid]
        rest = [p for p in others if parents[p.pid] != self.pid]
        sent = signal_all(rest, signal.SIGKILL)
        wait_gone(rest, _KILL_WAIT)
        sent += signal_all(tools, signal.SIGKILL)
        wait_gone(tools, _KILL_WAIT)
        if root:
            wait_gone(root, 1.0)
            if any(is_alive(p) for p in root):
                sent += signal_all(root, signal.SIGKILL)
                self._killed_root = True
                wait_gone(root, _KILL_WAIT)
        return sent


# ---------------------------------------------------------------------- spawning


def spawn_attempt(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    stdin_path: Path | None,
    exit_file: Path,
    inherit: Sequence[int] = (),
) -> AttemptProcess:
    """Start ``argv`` in ``cwd`` in a new session, its output appended to ``log_path``.

    ``env`` is added to the inherited environment (a full environment works too).
    stdin is ``stdin_path`` or /dev/null; ``inherit``: open files the process keeps
    (the locks of its ports). Blocking: call from a worker thread.
    Raises OSError if the process cannot start (missing cwd, no /bin/sh).
    """
    if not argv:
        raise ValueError("spawn_attempt needs a non-empty argv")
    make_private_dir(exit_file.parent)
    with contextlib.suppress(FileNotFoundError):
        exit_file.unlink()  # a stale file would lie about this attempt
    token = uuid.uuid4().hex
    full_env = {**os.environ, **env, TOKEN_VAR: token}
    log_fd = open_private_in(log_path, os.O_WRONLY | os.O_APPEND)
    try:
        with contextlib.ExitStack() as stack:
            stdin: int = subprocess.DEVNULL
            if stdin_path is not None:
                stdin = stack.enter_context(stdin_path.open("rb")).fileno()
            popen = subprocess.Popen(
                ["/bin/sh", "-c", _WRAPPER, "mc-attempt", str(exit_file), *argv],
                cwd=cwd,
                env=full_env,
                stdin=stdin,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                close_fds=True,
                pass_fds=tuple(inherit),
                start_new_session=True,
            )
    finally:
        os.close(log_fd)
    register_spawned(popen)
    pidfd = open_pidfd(popen.pid)  # our unreaped child: the pid cannot be reused yet
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = time.time()
    return AttemptProcess(popen.pid, create_time, exit_file, popen=popen, token=token, pidfd=pidfd)


def adopt(pid: int, create_time: float, exit_file: Path) -> AttemptProcess | None:
    """Take over an attempt started by an earlier mission-control; None if it is gone.

    The pid must still belong to the process started at ``create_time``. Its
    end is then seen through a pidfd and its status read from ``exit_file``
    (exit code None when the file is missing: killed without a chance to write).
    """
    popen = spawned_popen(pid)
    pidfd = open_pidfd(pid) if popen is None else None
    proc = open_process(pid)
    if proc is None or not same_start(proc, create_time):
        close_quietly(pidfd)
        return None
    if popen is not None:
        # Our own child, say after the engine detached and attached again.
        pidfd = open_pidfd(pid)
    try:
        token: str | None = proc.environ().get(TOKEN_VAR)
    except psutil.Error:
        token = None
    return AttemptProcess(pid, proc.create_time(), exit_file, popen=popen, token=token, pidfd=pidfd)


# ------------------------------------------------------------------------ helpers


def _parent(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def _settle(future: asyncio.Future[ExitStatus], task: asyncio.Task[ExitStatus]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (err := task.exception()) is not None:
        future.set_exception(err)
    else:
        future.set_result(task.result())
