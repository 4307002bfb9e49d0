"""What the table shows of each workstream's log (its age and last line), from the log watcher.

The table's "quiet" and "last output" columns follow every attempt's log. The
process's one log watcher says when a log grew (its size and modification time);
``LogActivity`` then reads the last few KiB of just the logs that grew, in a
thread, and hands the screen ``LogProbe``s. Nothing here looks at a file on a
timer: a quiet log costs nothing.

The watcher's callbacks only note what grew; ``LogActivity.Grew`` (posted once
per batch) asks the screen to run ``read_grown`` in a worker thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from textual.message import Message

from ..store.watch import LogGrew, LogWatcher
from .messages import LogProbe
from .untrusted import plain

TABLE_INTERVAL = 1.0
"""The least time between two reads of one log for the table (it shows seconds)."""
_PROBE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class _Grown:
    serial: int
    news: LogGrew


class LogActivity:
    """Subscribes the workstreams' logs to the watcher and reads the last line of those
    that grew. ``post`` is the screen's ``post_message`` (thread-safe)."""

    class Grew(Message):
        """Some logs grew: read them (``read_grown``) in a worker thread."""

    def __init__(self, watcher: LogWatcher, post: Callable[[Message], object]) -> None:
        self._watcher = watcher
        self._post = post
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        """The log each workstream is watched for (read on the watcher's thread too)."""
        self._unwatch: dict[str, Callable[[], None]] = {}
        self._grown: dict[str, _Grown] = {}
        self._serial = 0
        self._read: dict[str, int] = {}
        """Per workstream, the serial of the newest growth already read (a slow read
        finishing after a newer one is dropped)."""

    def follow(self, logs: Mapping[str, str | None]) -> None:
        """Watch each workstream's current log (``task_id -> path``); drop the others."""
        for task_id, path in list(self._paths.items()):
            wanted = logs.get(task_id)
            if wanted is None or Path(wanted) != path:
                self._drop(task_id)
        for task_id, wanted in logs.items():
            if wanted and task_id not in self._paths:
                with self._lock:
                    self._paths[task_id] = Path(wanted)
                self._unwatch[task_id] = self._watcher.watch(
                    wanted,
                    partial(self._grew, task_id),
                    min_interval=TABLE_INTERVAL,
                    replay=True,  # a log that already has lines shows its last one at once
                )

    def close(self) -> None:
        for task_id in list(self._paths):
            self._drop(task_id)

    def _drop(self, task_id: str) -> None:
        with self._lock:
            self._paths.pop(task_id, None)
        unwatch = self._unwatch.pop(task_id, None)
        if unwatch is not None:
            unwatch()

    def _grew(self, task_id: str, news: LogGrew) -> None:
        """On the watcher's thread: note it; the first of a batch asks for a read."""
        with self._lock:
            if self._paths.get(task_id) != news.path:
                return  # an earlier attempt's log
            first = not self._grown
            self._serial += 1
            self._grown[task_id] = _Grown(self._serial, news)
        if first:
            self._post(LogActivity.Grew())

    def read_grown(self) -> dict[str, LogProbe]:
        """The last line of every log that grew since the last call (blocking: a thread)."""
        with self._lock:
            grown, self._grown = self._grown, {}
        probes: dict[str, tuple[int, LogProbe]] = {}
        for task_id, item in grown.items():
            news = item.news
            probes[task_id] = (
                item.serial,
                LogProbe(news.size, news.mtime, last_line(str(news.path), news.size)),
            )
        with self._lock:
            fresh: dict[str, LogProbe] = {}
            for task_id, (serial, probe) in probes.items():
                if serial > self._read.get(task_id, 0):
                    self._read[task_id] = serial
                    fresh[task_id] = probe
        return fresh


def last_line(path: str, size: int) -> str:
    """The last non-empty line of a log, without its ANSI codes (reads the last 4 KiB)."""
    if size <= 0:
        return ""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        data = os.pread(fd, min(size, _PROBE_BYTES), max(0, size - _PROBE_BYTES))
    finally:
        os.close(fd)
    for raw in reversed(data.splitlines()):
        text = plain(raw.decode("utf-8", errors="replace")).strip()
        if text:
            return text[:300]
    return ""
