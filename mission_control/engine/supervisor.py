"""Start, watch, pause and stop an attempt's whole process tree.

Why it has this shape:

* Each attempt runs as ``/bin/sh -c WRAPPER EXIT_FILE ARGV...`` in a session of
  its own. The tiny shell runs the tool, then writes the tool's exit status to
  ``EXIT_FILE``: a later mission-control (after a crash of this one) can learn
  the status of a process it did not spawn, which ``waitpid`` cannot tell it.
  The shell traps TERM, so a TERM sent to the tree still lets it record the
  tool's end. stdout and stderr go straight to the log file: mission-control is
  never in the data path.
* An attempt's tree is found by parent links, by the session id, by pids seen
  earlier (a double-forked daemon leaves the session), and by an environment
  token that every process of the attempt inherits (``MC_ATTEMPT_TOKEN``), so
  an orphan that called ``setsid`` is still found.
* ``wait()`` is event-driven: a pidfd on the loop's selector wakes it when the
  process ends; no polling sleep. Without pidfds, a thread blocks in waitpid.
  While ``terminate`` is at work, ``wait()`` also waits for it to finish: the
  shell ends with the tool, and the rest of the tree must be gone by then too.
* With :func:`enable_subreaper`, orphans of attempts become our children; the
  ones we can prove came from an attempt are reaped by pid (never
  ``waitpid(-1)``, which would steal the status of a child someone else
  waits for).

Blocking methods (``pause``, ``resume``, ``tree``, ``poll``) are safe in worker
threads; ``wait`` and ``terminate`` are coroutines for the engine's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..store.private import make_private_dir, open_private
from .process_tree import (
    child_pids,
    environ_has,
    is_alive,
    is_zombie,
    open_process,
    processes_with_env,
    session_pids,
    signal_all,
)

TOKEN_VAR = "MC_ATTEMPT_TOKEN"
"""Environment variable whose unique value marks every process of one attempt."""

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

_CREATE_TIME_TOLERANCE = 1.0
"""Seconds: psutil derives start times from the boot time, which the clock may nudge."""

_KILL_WAIT = 5.0
"""Seconds to wait for the tree to vanish after SIGKILL before calling anything a survivor."""

_HAS_PIDFD = hasattr(os, "pidfd_open")


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How an attempt ended: an exit code, a signal, or neither when unknown."""

    exit_code: int | None
    signal: int | None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        if self.exit_code is not None:
            return f"exited {self.exit_code}"
        return "exit status unknown"


UNKNOWN = ExitStatus(None, None)


@dataclass(frozen=True, slots=True)
class TerminateResult:
    """What ``terminate`` did: who got TERM, who needed KILL, who is still there."""

    terminated: tuple[int, ...]
    killed: tuple[int, ...]
    survivors: tuple[int, ...]
    """Pids of the tree still alive after SIGKILL: should always be empty."""
    status: ExitStatus | None
    """The attempt's exit status if it is known by now."""

    @property
    def clean(self) -> bool:
        return not self.survivors


def decode_status(code: int) -> ExitStatus:
    """Turn a wait status (Popen style: negative = signal) or a shell ``$?`` into ExitStatus.

    A shell reports a command killed by signal N as 128+N, so such codes are read as
    signals; a tool that itself exits 128+N is reported the same way.
    """
    if code < 0:
        return ExitStatus(None, -code)
    if 128 < code < 128 + signal.NSIG:
        return ExitStatus(None, code - 128)
    return ExitStatus(code, None)


def read_exit_file(path: Path) -> ExitStatus | None:
    """The status the wrapper shell recorded, or None if it wrote none (or not yet)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.lstrip("-").isdigit():
        return None
    return decode_status(int(text))


# ---------------------------------------------------------------- process-wide state


class _Registry:
    """What this mission-control process knows about every attempt it supervises."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spawned: dict[int, subprocess.Popen[bytes]] = {}
        """Attempt shells we started: their Popen reaps them, nobody else may."""
        self.members: dict[int, float] = {}
        """pid -> start time of every process seen in an attempt tree (not the shells)."""


_REGISTRY = _Registry()
_subreaper = False


def enable_subreaper(enabled: bool = True) -> bool:
    """Make this process a child subreaper (Linux): orphans of attempts reparent to us.

    Then a double-forked descendant stays findable as our child instead of
    disappearing under init. Returns False where that is not possible.
    ``enabled=False`` undoes it (tests use that to check both ways).
    """
    global _subreaper
    if _subreaper == enabled:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_child_subreaper = 36
        if libc.prctl(pr_set_child_subreaper, int(enabled), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _subreaper = enabled
    return True


def reap_orphans(our_children: Sequence[int] | None = None) -> list[int]:
    """Reap zombie children that provably are orphans of attempts; the pids reaped.

    A zombie child of ours is reaped if it was seen in an attempt's tree (same
    pid and start time), or if its session is neither ours nor its own: a
    process we forked ourselves can only be in one of those two, so such a
    child was reparented to us. Attempt shells are reaped through their Popen;
    anything else is left to whoever spawned it.
    """
    with _REGISTRY.lock:
        spawned = list(_REGISTRY.spawned.values())
        members = dict(_REGISTRY.members)
    finished = [p.pid for p in spawned if p.poll() is not None]  # nobody waits: still reap
    if finished:
        with _REGISTRY.lock:
            for pid in finished:
                _REGISTRY.spawned.pop(pid, None)
    children = child_pids(os.getpid()) if our_children is None else our_children
    spawned_pids = {p.pid for p in spawned}
    our_sid = os.getsid(0)
    reaped: list[int] = []
    for pid in children:
        if pid in spawned_pids:
            continue
        proc = open_process(pid)
        if proc is None or not is_zombie(proc):
            continue
        try:
            started = proc.create_time()
            sid = os.getsid(pid)
        except (psutil.Error, OSError):
            continue
        seen = pid in members and abs(members[pid] - started) < _CREATE_TIME_TOLERANCE
        if not seen and sid in (our_sid, pid):
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
    if members:
        _prune_members()
    return reaped


def _prune_members() -> None:
    with _REGISTRY.lock:
        gone = [pid for pid in _REGISTRY.members if not psutil.pid_exists(pid)]
        for pid in gone:
            del _REGISTRY.members[pid]


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
        self._token = token
        self._root = open_process(pid)
        if self._root is not None and not _same_start(self._root, create_time):
            self._root = None
        self._lock = threading.Lock()
        """Guards the cache of known members; held only briefly."""
        self._control = threading.Lock()
        """Serialises pause, resume and terminate."""
        self._known: dict[int, psutil.Process] = {}
        self._not_ours: set[tuple[int, float]] = set()
        self._stopped: list[psutil.Process] = []
        self._paused = False
        self._paused_since = 0.0
        self._paused_total = 0.0
        self._started = time.monotonic()
        self._killed_root = False
        self._status: ExitStatus | None = None
        self._future: asyncio.Future[ExitStatus] | None = None
        self._pidfd = pidfd
        self._pidfd_watched = False
        """True while the loop's selector holds the pidfd: it must not be closed then."""
        self._pidfd_lock = threading.Lock()
        self._stops: set[concurrent.futures.Future[None]] = set()
        """Terminations under way (guarded by ``_pidfd_lock``): ``wait`` outlasts them."""
        self._finalizer = weakref.finalize(self, _close_quietly, pidfd)

    def __repr__(self) -> str:
        kind = "child" if self._popen is not None else "adopted"
        return f"<AttemptProcess pid={self.pid} {kind} status={self._status}>"

    # ------------------------------------------------------------------ facts

    @property
    def is_child(self) -> bool:
        """True if this process spawned the attempt (and so can reap it)."""
        return self._popen is not None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def status(self) -> ExitStatus | None:
        """The exit status once known (after ``wait``, ``poll`` or ``terminate``)."""
        return self._status

    def active_seconds(self) -> float:
        """Seconds since this object was made, minus the time spent paused."""
        paused = self._paused_total
        if self._paused:
            paused += time.monotonic() - self._paused_since
        return time.monotonic() - self._started - paused

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
        if self._root is not None and is_alive(self._root):
            return None
        _reap_if_our_child(self.pid, self.create_time)
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
                with _REGISTRY.lock:
                    _REGISTRY.spawned.pop(self.pid, None)
                if not self._pidfd_watched:
                    self._close_pidfd_locked()
            return self._status

    def _close_pidfd_locked(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            self._finalizer.detach()
            _close_quietly(fd)

    def _collect_blocking(self) -> ExitStatus:
        """After the root has ended: reap it (our child) or read its exit file."""
        if self._popen is not None:
            return self._set_status(decode_status(self._popen.wait()))
        status = self.poll()
        if status is None:  # the pidfd is missing or woke us early: block for real
            assert self._root is not None
            with contextlib.suppress(psutil.Error):
                self._root.wait()
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

    def tree(self) -> list[psutil.Process]:
        """Every live process of the attempt, parents before children (blocking)."""
        return self._scan(full=True)

    def members(self, our_children: Sequence[int] | None = None) -> list[psutil.Process]:
        """The tree as a cheap pass finds it, for once-a-second sampling (blocking).

        It follows child lists from the root and from processes seen before,
        and looks at ``our_children`` (default: read now) for reparented orphans,
        but does not scan every process on the machine as ``tree`` does.
        """
        return self._scan(full=False, our_children=our_children)

    def _scan(
        self, *, full: bool, our_children: Sequence[int] | None = None
    ) -> list[psutil.Process]:
        """Find the tree. ``full`` adds a pass over every process on the machine.

        The cheap pass follows child lists from the root and from every process
        seen before, and checks our own children (orphans reparented to a
        subreaper) for the attempt's token. The full pass also takes the
        attempt's session and every process that carries the token.
        """
        # The lock guards only the cache: a slow scan (or a terminate waiting
        # out its grace period) must never hold up the sampler.
        with self._lock:
            known = dict(self._known)
        found: dict[int, psutil.Process] = {}
        seeds: list[psutil.Process] = []
        if self._root is not None:
            seeds.append(self._root)
        seeds.extend(known.values())
        seeds.extend(self._orphans(known, our_children))
        if full:
            seeds.extend(self._session_members())
            seeds.extend(self._token_holders())
        me = os.getpid()
        queue = deque(p for p in seeds if p.pid != me)
        while queue:
            proc = queue.popleft()
            if proc.pid in found or not is_alive(proc):
                continue
            found[proc.pid] = proc
            for pid in child_pids(proc.pid):
                if pid not in found and (child := _handle(known, pid)) is not None:
                    queue.append(child)
        with self._lock:
            self._known = found
        members = {pid: _start(p) for pid, p in found.items() if pid != self.pid}
        with _REGISTRY.lock:
            _REGISTRY.members.update(members)
        return list(found.values())

    def _orphans(
        self, known: Mapping[int, psutil.Process], our_children: Sequence[int] | None
    ) -> list[psutil.Process]:
        """Our children that are not attempt shells but carry this attempt's token."""
        if self._token is None:
            return []
        children = child_pids(os.getpid()) if our_children is None else our_children
        with _REGISTRY.lock:
            spawned = set(_REGISTRY.spawned)
        current = set(children)
        with self._lock:
            # Forget children that have gone: the set stays as small as our child list.
            self._not_ours = {k for k in self._not_ours if k[0] in current}
            not_ours = frozenset(self._not_ours)
        strangers: list[tuple[int, float]] = []
        found: list[psutil.Process] = []
        for pid in children:
            if pid in spawned or pid in known:
                continue
            proc = open_process(pid)
            if proc is None:
                continue
            key = (pid, _start(proc))
            if key in not_ours:
                continue
            if environ_has(proc, {TOKEN_VAR: self._token}):
                found.append(proc)
            else:
                strangers.append(key)
        with self._lock:
            self._not_ours.update(strangers)
        return found

    def _session_members(self) -> list[psutil.Process]:
        # The session id is the root's pid. Linux keeps a pid in use while any
        # process has it as session id, so if the root has ended and a stranger
        # now holds the pid, the session is not ours any more.
        if self._root is None or not self._root.is_running():
            holder = open_process(self.pid)
            if holder is not None and not _same_start(holder, self.create_time):
                return []
        found = []
        for pid in session_pids(self.pid):
            proc = open_process(pid)
            if proc is not None:
                found.append(proc)
        return found

    def _token_holders(self) -> list[psutil.Process]:
        if self._token is None:
            return []
        # Known pids are looked at too: a handle cached by an earlier scan may
        # name a process that has gone, its pid now held by a newer one of ours.
        return processes_with_env({TOKEN_VAR: self._token}, exclude={os.getpid()})

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
                fresh = [p for p in self._scan(full=True) if p.pid not in stopped]
                if not fresh:
                    break
                for proc in fresh:
                    if signal_all([proc], signal.SIGSTOP):
                        stopped[proc.pid] = proc
            self._stopped = list(stopped.values())
            if not self._paused:
                self._paused = True
                self._paused_since = time.monotonic()
            return [p.pid for p in self._stopped]

    def resume(self) -> list[int]:
        """SIGCONT every process of the tree, children before parents; the pids continued."""
        with self._control:
            procs: dict[int, psutil.Process] = {p.pid: p for p in self._scan(full=True)}
            for proc in self._stopped:
                procs.setdefault(proc.pid, proc)
            # Children first: a parent that wakes up finds its children running.
            sent = signal_all(reversed(list(procs.values())), signal.SIGCONT)
            self._stopped = []
            if self._paused:
                self._paused = False
                self._paused_total += time.monotonic() - self._paused_since
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
            procs = self._scan(full=True)
            terminated = signal_all(procs, signal.SIGTERM)
            # A stopped process only handles its TERM once continued.
            signal_all(procs, signal.SIGCONT)
            self._stopped = []
            if self._paused:
                self._paused = False
                self._paused_total += time.monotonic() - self._paused_since
            if procs and grace > 0:
                _wait_gone(procs, grace)
            killed: list[int] = []
            for _ in range(3):
                left = self._scan(full=True)
                if not left:
                    break
                killed.extend(self._kill(left))
            survivors = [p.pid for p in self._scan(full=True)]
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
        _wait_gone(rest, _KILL_WAIT)
        sent += signal_all(tools, signal.SIGKILL)
        _wait_gone(tools, _KILL_WAIT)
        if root:
            _wait_gone(root, 1.0)
            if any(is_alive(p) for p in root):
                sent += signal_all(root, signal.SIGKILL)
                self._killed_root = True
                _wait_gone(root, _KILL_WAIT)
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
) -> AttemptProcess:
    """Start ``argv`` in ``cwd`` in a new session, its output appended to ``log_path``.

    ``env`` is added to the inherited environment (a full environment works too).
    stdin is ``stdin_path`` or /dev/null. Blocking: call from a worker thread.
    Raises OSError if the process cannot start (missing cwd, no /bin/sh).
    """
    if not argv:
        raise ValueError("spawn_attempt needs a non-empty argv")
    make_private_dir(log_path.parent)
    make_private_dir(exit_file.parent)
    with contextlib.suppress(FileNotFoundError):
        exit_file.unlink()  # a stale file would lie about this attempt
    token = uuid.uuid4().hex
    full_env = {**os.environ, **env, TOKEN_VAR: token}
    log_fd = open_private(log_path, os.O_WRONLY | os.O_APPEND)
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
                start_new_session=True,
            )
    finally:
        os.close(log_fd)
    with _REGISTRY.lock:
        _REGISTRY.spawned[popen.pid] = popen
    pidfd = _open_pidfd(popen.pid)  # our unreaped child: the pid cannot be reused yet
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
    with _REGISTRY.lock:
        popen = _REGISTRY.spawned.get(pid)
    pidfd = _open_pidfd(pid) if popen is None else None
    proc = open_process(pid)
    if proc is None or not _same_start(proc, create_time):
        _close_quietly(pidfd)
        return None
    if popen is not None:
        # Our own child, say after the engine detached and attached again.
        pidfd = _open_pidfd(pid)
    try:
        token: str | None = proc.environ().get(TOKEN_VAR)
    except psutil.Error:
        token = None
    return AttemptProcess(pid, proc.create_time(), exit_file, popen=popen, token=token, pidfd=pidfd)


# ------------------------------------------------------------------------ helpers


def _reap_if_our_child(pid: int, create_time: float) -> None:
    """An adopted shell reparented to us (subreaper) ends as our zombie: reap that one pid."""
    proc = open_process(pid)
    if proc is None or not _same_start(proc, create_time):
        return
    try:
        mine = proc.ppid() == os.getpid() and is_zombie(proc)
    except psutil.Error:
        return
    if mine:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _handle(known: Mapping[int, psutil.Process], pid: int) -> psutil.Process | None:
    """The cached psutil handle for ``pid`` if it still names the same process."""
    cached = known.get(pid)
    if cached is not None and cached.is_running():
        return cached
    return open_process(pid)


def _parent(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def _start(proc: psutil.Process) -> float:
    try:
        return proc.create_time()
    except psutil.Error:
        return 0.0


def _same_start(proc: psutil.Process, create_time: float) -> bool:
    return abs(_start(proc) - create_time) < _CREATE_TIME_TOLERANCE


def _open_pidfd(pid: int) -> int | None:
    if not _HAS_PIDFD:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _close_quietly(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _remove_reader(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    if not loop.is_closed():
        with contextlib.suppress(Exception):
            loop.remove_reader(fd)


def _settle(future: asyncio.Future[ExitStatus], task: asyncio.Task[ExitStatus]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (err := task.exception()) is not None:
        future.set_exception(err)
    else:
        future.set_result(task.result())


def _wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Block until every process has exited or ``timeout`` passes; those still alive.

    Event-driven with pidfds (one ``poll`` over all of them); a short polling
    loop where pidfds are missing. A zombie counts as gone; nothing is reaped.
    """
    deadline = time.monotonic() + timeout
    if not _HAS_PIDFD:
        # Not psutil.wait_procs: it reaps a child of ours, and the Popen of an
        # attempt shell would then read exit code 0 instead of its real status.
        alive = [p for p in procs if is_alive(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = [p for p in alive if is_alive(p)]
        return alive
    fds: dict[int, psutil.Process] = {}
    try:
        for proc in procs:
            fd = _open_pidfd(proc.pid)
            if fd is None:
                continue
            if not is_alive(proc):  # gone, or the pid now names someone else
                os.close(fd)
                continue
            fds[fd] = proc
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        pending = set(fds)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _event in poller.poll(left * 1000):
                poller.unregister(fd)
                pending.discard(fd)
        return [fds[fd] for fd in pending if is_alive(fds[fd])]
    finally:
        for fd in fds:
            os.close(fd)
