"""Finding every process of one attempt, however it tried to leave.

An attempt's tree is found by parent links, by the session id, by pids seen
earlier (a double-forked daemon leaves the session), and by an environment
token that every process of the attempt inherits (``MC_ATTEMPT_TOKEN``), so an
orphan that called ``setsid`` is still found. A cheap pass (child lists from
what is known, plus our own children) serves the once-a-second sampler; a full
pass over every process on the machine serves pause and terminate.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence

import psutil

from .process_tree import (
    child_pids,
    environ_has,
    is_alive,
    open_process,
    processes_with_env,
    same_start,
    session_pids,
    start_time,
)
from .reaping import note_members, spawned_pids

TOKEN_VAR = "MC_ATTEMPT_TOKEN"
"""Environment variable whose unique value marks every process of one attempt."""


class AttemptTree:
    """The processes of one attempt: its root shell and whatever descends from it."""

    def __init__(self, pid: int, create_time: float, token: str | None) -> None:
        self.pid = pid
        self.create_time = create_time
        self.token = token
        self.root = open_process(pid)
        """The attempt's shell, or None if it had gone (or its pid is someone else's)."""
        if self.root is not None and not same_start(self.root, create_time):
            self.root = None
        self._lock = threading.Lock()
        """Guards the cache of known members; held only briefly."""
        self._known: dict[int, psutil.Process] = {}
        self._not_ours: set[tuple[int, float]] = set()

    def scan(
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
        if self.root is not None:
            seeds.append(self.root)
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
        members = {pid: start_time(p) for pid, p in found.items() if pid != self.pid}
        note_members(members)
        return list(found.values())

    def _orphans(
        self, known: Mapping[int, psutil.Process], our_children: Sequence[int] | None
    ) -> list[psutil.Process]:
        """Our children that are not attempt shells but carry this attempt's token."""
        if self.token is None:
            return []
        children = child_pids(os.getpid()) if our_children is None else our_children
        spawned = spawned_pids()
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
            key = (pid, start_time(proc))
            if key in not_ours:
                continue
            if environ_has(proc, {TOKEN_VAR: self.token}):
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
        if self.root is None or not self.root.is_running():
            holder = open_process(self.pid)
            if holder is not None and not same_start(holder, self.create_time):
                return []
        found = []
        for pid in session_pids(self.pid):
            proc = open_process(pid)
            if proc is not None:
                found.append(proc)
        return found

    def _token_holders(self) -> list[psutil.Process]:
        if self.token is None:
            return []
        # Known pids are looked at too: a handle cached by an earlier scan may
        # name a process that has gone, its pid now held by a newer one of ours.
        return processes_with_env({TOKEN_VAR: self.token}, exclude={os.getpid()})


def _handle(known: Mapping[int, psutil.Process], pid: int) -> psutil.Process | None:
    """The cached psutil handle for ``pid`` if it still names the same process."""
    cached = known.get(pid)
    if cached is not None and cached.is_running():
        return cached
    return open_process(pid)
