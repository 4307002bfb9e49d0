"""``LogWatcher``: the one stream of "log grew" notifications in a process.

Many attempts write logs at once, and several readers care: the engine's stall
detection, the app's table (last output, quiet time), each log pane, ``logs -f``.
Each subscribes here (``shared_watcher()``) instead of polling on its own, and
hears ``LogGrew(path, size, mtime)``. So:

- on Linux the thread blocks on an inotify descriptor (through ``ctypes``, no
  dependency) plus a pipe used to wake it for new watches or shutdown; it costs
  nothing while logs are quiet;
- elsewhere, or when inotify is unavailable, it stats each file every ``poll_interval``
  (0.25 s);
- a file that does not exist yet is polled until it appears, then watched by inotify;
- a file written faster than its subscribers want to hear of it (its news pile up
  between two callbacks) is polled at their intervals instead, until a poll finds it
  unchanged: under inotify every ``write`` would cost its writer a kernel event;
- callbacks are coalesced per subscription: at most one per its ``min_interval`` (20
  per second by default; a pane asks for fewer, stall detection for one a second), and
  only when the size (or the file behind the path) really changed. A chatty tool writing
  thousands of lines a second still costs a view a few refreshes a second.

Callbacks run on the watcher thread and must not block (post a message, set a flag).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

_log = logging.getLogger(__name__)

MIN_INTERVAL: Final = 0.05
POLL_INTERVAL: Final = 0.25

_IN_MODIFY: Final = 0x00000002
_IN_ATTRIB: Final = 0x00000004
_IN_CLOSE_WRITE: Final = 0x00000008
_IN_DELETE_SELF: Final = 0x00000400
_IN_MOVE_SELF: Final = 0x00000800
_IN_Q_OVERFLOW: Final = 0x00004000
_IN_IGNORED: Final = 0x00008000
_IN_NONBLOCK: Final = os.O_NONBLOCK
_IN_CLOEXEC: Final = 0o2000000
_WATCH_MASK: Final = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_ATTRIB | _IN_DELETE_SELF | _IN_MOVE_SELF
_EVENT_HEADER: Final = struct.Struct("iIII")  # wd, mask, cookie, name length
_READ_BYTES: Final = 256 * 1024
_PLAIN_CHANGES: Final = frozenset({_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE})


class _Inotify:
    """The three inotify calls, via libc."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self._init1 = libc.inotify_init1
        self._init1.argtypes = [ctypes.c_int]
        self._init1.restype = ctypes.c_int
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._add.restype = ctypes.c_int
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
        self._rm.restype = ctypes.c_int
        fd = self._init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd

    def add_watch(self, path: Path) -> int | None:
        """The watch descriptor, or ``None`` when the file cannot be watched (gone, say)."""
        wd = self._add(self.fd, os.fsencode(path), _WATCH_MASK)
        return None if wd < 0 else int(wd)

    def rm_watch(self, wd: int) -> None:
        self._rm(self.fd, wd)

    def read_events(self) -> dict[int, int]:
        """Pending events as ``wd -> mask`` (the masks of one file or-ed together).

        A full-speed writer makes an event per ``write``: the queue is drained in
        large reads, and events on files (which carry no name) are taken apart as one
        array of integers rather than one at a time.
        """
        out: dict[int, int] = {}
        while True:
            try:
                data = os.read(self.fd, _READ_BYTES)
            except BlockingIOError:
                return out
            if not data:
                return out
            if len(data) % _EVENT_HEADER.size == 0:
                words = memoryview(data).cast("i")  # events on files carry no name
                masks = set(words[1::4])
                if not any(words[3::4]) and masks <= _PLAIN_CHANGES:
                    mask = 0
                    for each in masks:
                        mask |= each
                    for wd in set(words[0::4]):
                        out[wd] = out.get(wd, 0) | mask
                    continue
            pos = 0
            while pos + _EVENT_HEADER.size <= len(data):
                wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(data, pos)
                out[wd] = out.get(wd, 0) | mask
                pos += _EVENT_HEADER.size + length

    def close(self) -> None:
        os.close(self.fd)


def _inotify_or_none() -> _Inotify | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return _Inotify()
    except (OSError, AttributeError):
        return None  # no inotify (old kernel, exhausted instances): fall back to polling


@dataclass(frozen=True, slots=True)
class LogGrew:
    """A watched log changed: its size (and modification time) now."""

    path: Path
    size: int
    mtime: float


LogCallback = Callable[[LogGrew], None]


@dataclass(slots=True)
class _Entry:
    path: Path
    callback: LogCallback
    identity: tuple[int, int, int] | None  # (dev, inode, size) at the last callback
    min_interval: float
    wd: int | None = None
    dirty: bool = False
    last_fired: float = 0.0
    next_poll: float = field(default=0.0)
    busy: bool = False
    """Written faster than it is reported: polled at its interval instead of watched."""


class LogWatcher:
    """Calls ``callback(LogGrew)`` from its own thread when a watched file changes size."""

    def __init__(
        self,
        *,
        min_interval: float = MIN_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
        use_inotify: bool | None = None,
    ) -> None:
        self.min_interval = min_interval
        self.poll_interval = poll_interval
        self._inotify = _inotify_or_none() if use_inotify in (None, True) else None
        if use_inotify and self._inotify is None:
            raise OSError("inotify is not available here")
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self._by_wd: dict[int, set[int]] = {}
        self._next_id = 0
        self._closed = False
        self._stop = threading.Event()
        self._poke = threading.Event()
        """Wakes the polling thread (the inotify thread is woken through the pipe)."""
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        if self._inotify is not None:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="log-watcher", daemon=True)
        self._thread.start()

    # -- public

    def watch(
        self,
        path: Path | str,
        callback: LogCallback,
        *,
        min_interval: float | None = None,
        replay: bool = False,
    ) -> Callable[[], None]:
        """Watch ``path`` (it may not exist yet); returns the function that stops it.

        ``min_interval``: the least time between two callbacks of this subscription
        (the watcher's own by default). ``replay``: hear the file's current size at
        once (when it exists), as a reader that starts late needs to.
        """
        target = Path(path)
        interval = self.min_interval if min_interval is None else min_interval
        with self._lock:
            if self._closed:
                raise RuntimeError("LogWatcher is closed")
            entry_id = self._next_id
            self._next_id += 1
            entry = _Entry(target, callback, None, interval)
            self._attach(entry_id, entry)
            entry.identity = None if replay else _identity(target)
            entry.dirty = replay
            entry.next_poll = time.monotonic() + self.poll_interval
            self._entries[entry_id] = entry
        self._wake()

        def unwatch() -> None:
            with self._lock:
                gone = self._entries.pop(entry_id, None)
                if gone is not None and gone.wd is not None:
                    self._detach(entry_id, gone.wd)

        return unwatch

    def rescan(self) -> None:
        """Look at every watched file now, not at its next change or poll (a file system
        that sends no inotify events, such as a network mount, needs a nudge)."""
        with self._lock:
            for entry in self._entries.values():
                entry.dirty = True
        self._wake()

    @property
    def watched(self) -> int:
        """How many subscriptions are open."""
        with self._lock:
            return len(self._entries)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        if self._inotify is not None:
            self._inotify.close()
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)

    def __enter__(self) -> LogWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (callers hold the lock)

    def _attach(self, entry_id: int, entry: _Entry) -> None:
        if self._inotify is None:
            return
        wd = self._inotify.add_watch(entry.path)
        if wd is not None:
            entry.wd = wd
            self._by_wd.setdefault(wd, set()).add(entry_id)

    def _detach(self, entry_id: int, wd: int) -> None:
        ids = self._by_wd.get(wd)
        if ids is None:
            return
        ids.discard(entry_id)
        if not ids:
            del self._by_wd[wd]
            if self._inotify is not None:
                self._inotify.rm_watch(wd)

    def _poll_instead(self, wd: int) -> None:
        """A file written faster than its subscribers hear of it: stop its inotify watch
        (each ``write`` would cost its writer an event in the kernel) and poll it at the
        subscriptions' own intervals until a poll finds it unchanged."""
        now = time.monotonic()
        for entry_id in self._by_wd.pop(wd, set()):
            entry = self._entries.get(entry_id)
            if entry is not None:
                entry.wd = None
                entry.busy = True
                entry.next_poll = now + entry.min_interval
        if self._inotify is not None:
            self._inotify.rm_watch(wd)

    def _wake(self) -> None:
        if self._wake_w is None:
            self._poke.set()
            return
        # A full pipe or one being closed: the thread wakes anyway.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- the thread

    def _run(self) -> None:
        next_read = 0.0
        while not self._stop.is_set():
            timeout = self._timeout()
            if self._inotify is not None:
                assert self._wake_r is not None
                # After a read, the queue is left to fill for ``min_interval``: a file's
                # repeated events merge in the kernel and one read takes them all (an
                # overflow marks every file changed), so a flood costs a few reads a second.
                wait = next_read - time.monotonic()
                fds = [self._wake_r]
                if wait <= 0:
                    fds.append(self._inotify.fd)
                elif timeout is None or timeout > wait:
                    timeout = wait
                try:
                    ready, _, _ = select.select(fds, [], [], timeout)
                except (OSError, ValueError):
                    return  # closed under us
                if self._wake_r in ready:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                if self._stop.is_set():
                    return
                if self._inotify.fd in ready:
                    self._take_events(self._inotify.read_events())
                    next_read = time.monotonic() + self.min_interval
            else:
                self._poke.wait(self.poll_interval if timeout is None else timeout)
                self._poke.clear()
                if self._stop.is_set():
                    return
            self._fire_due()

    def _timeout(self) -> float | None:
        now = time.monotonic()
        with self._lock:
            deadlines = [e.last_fired + e.min_interval for e in self._entries.values() if e.dirty]
            deadlines += [e.next_poll for e in self._entries.values() if e.wd is None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _take_events(self, events: dict[int, int]) -> None:
        with self._lock:
            for wd, mask in events.items():
                if mask & _IN_Q_OVERFLOW:
                    for entry in self._entries.values():
                        entry.dirty = True
                    continue
                ids = self._by_wd.get(wd, set())
                flooded = False
                for entry_id in ids:
                    found = self._entries.get(entry_id)
                    if found is not None:
                        flooded = flooded or found.dirty  # news before the last was told
                        found.dirty = True
                        if mask & _IN_IGNORED:  # file gone: poll until a new one appears
                            found.wd = None
                if mask & _IN_IGNORED:
                    self._by_wd.pop(wd, None)
                elif flooded:
                    self._poll_instead(wd)

    def _fire_due(self) -> None:
        now = time.monotonic()
        calls: list[tuple[LogCallback, LogGrew]] = []
        with self._lock:
            for entry_id, entry in self._entries.items():
                if entry.wd is None and now >= entry.next_poll:
                    entry.dirty = True
                    if entry.busy:
                        entry.next_poll = now + max(entry.min_interval, self.min_interval)
                    else:
                        entry.next_poll = now + self.poll_interval
                        if self._inotify is not None and entry.path.exists():
                            self._attach(entry_id, entry)
                if not entry.dirty or now - entry.last_fired < entry.min_interval:
                    continue
                entry.dirty = False
                st = _stat(entry.path)
                identity = None if st is None else (st.st_dev, st.st_ino, st.st_size)
                if entry.busy and identity == entry.identity:
                    entry.busy = False  # quiet again: watched again
                    if self._inotify is not None:
                        self._attach(entry_id, entry)
                if st is not None and identity != entry.identity:
                    entry.identity = identity
                    entry.last_fired = now
                    calls.append((entry.callback, LogGrew(entry.path, st.st_size, st.st_mtime)))
                elif identity is None:
                    entry.identity = None
        for callback, grew in calls:
            try:
                callback(grew)
            except Exception:
                _log.exception("log watcher callback for %s failed", grew.path)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _identity(path: Path) -> tuple[int, int, int] | None:
    st = _stat(path)
    return None if st is None else (st.st_dev, st.st_ino, st.st_size)


_shared: LogWatcher | None = None
_shared_lock = threading.Lock()


def shared_watcher() -> LogWatcher:
    """The process's one watcher, started on first use: the engine, the app and
    ``logs -f`` all subscribe to it, so a process has one thread watching logs."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.closed:
            _shared = LogWatcher()
        return _shared
