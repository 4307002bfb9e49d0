"""One sampler thread for every running attempt: CPU, memory and log activity, ~1 Hz.

psutil calls block, so they live in this one thread rather than on the event
loop; each tick produces one batch for all attempts, handed to a callback
(the engine moves it onto its loop and publishes one ``MetricsSampled``).
The sampler's own cost stays small: psutil handles are cached across ticks
(``cpu_percent`` needs the previous reading anyway), trees are refreshed from
the kernel's child lists rather than by scanning every process. A log's size
is not looked at here: the process's one log watcher (``store.watch``) says when
it grows, and each tick hands on the last size it heard.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ..agents.report import AgentReport, read_report
from ..store.logs import report_path
from ..store.watch import LogGrew, LogWatcher, shared_watcher
from .events import ProcessSample
from .process_tree import child_pids
from .supervisor import AttemptProcess, reap_orphans

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogActivity:
    """A log file's size and last change; the engine derives "last output" and stalls."""

    size: int
    mtime: float | None
    """None while the file does not exist."""
    report: AgentReport | None = None
    """The agent's report, when it changed since the last tick (``agents.report``)."""


SampleCallback = Callable[[dict[str, ProcessSample], dict[str, LogActivity]], None]


@dataclass(slots=True)
class _Watch:
    proc: AttemptProcess
    log_path: Path
    handles: dict[int, psutil.Process] = field(default_factory=dict)
    report_seen: int = 0
    """The report file's modification time (ns) when it was last read."""
    log: LogGrew | None = None
    """What the log watcher last said of the log (None: nothing yet, no file)."""
    unwatch_log: Callable[[], None] | None = None


class MetricsSampler:
    """Samples watched attempts every ``interval`` seconds in a daemon thread.

    ``on_sample(samples, activity)`` runs in the sampler thread, keyed by the
    ``task_id`` given to ``watch``; it must not block (hand the batch to a loop).
    """

    def __init__(
        self, interval: float, on_sample: SampleCallback, watcher: LogWatcher | None = None
    ) -> None:
        self.interval = interval
        self._on_sample = on_sample
        self._watcher = watcher
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, task_id: str, proc: AttemptProcess, log_path: Path) -> None:
        """Sample ``proc``'s tree and ``log_path`` from the next tick on."""
        w = _Watch(proc, log_path)

        def grew(news: LogGrew) -> None:
            w.log = news  # one assignment: the tick reads it without a lock

        watcher = self._watcher or shared_watcher()
        # One callback per tick is all a tick reads; the current size comes at once.
        w.unwatch_log = watcher.watch(log_path, grew, min_interval=self.interval, replay=True)
        with self._lock:
            old = self._watches.pop(task_id, None)
            self._watches[task_id] = w
        _stop_watching(old)

    def unwatch(self, task_id: str) -> None:
        with self._lock:
            old = self._watches.pop(task_id, None)
        _stop_watching(old)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mc-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (a tick in progress finishes first)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
        for w in watches:
            _stop_watching(w)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                samples, activity = self.sample()
                self._on_sample(samples, activity)
            except Exception:  # one bad tick must not end sampling for the run
                _log.exception("metrics sampler tick failed")

    def sample(self) -> tuple[dict[str, ProcessSample], dict[str, LogActivity]]:
        """Take one sample of every watched attempt now (blocking; what each tick does)."""
        with self._lock:
            watches = dict(self._watches)
        our_children = child_pids(os.getpid())
        samples: dict[str, ProcessSample] = {}
        activity: dict[str, LogActivity] = {}
        for task_id, w in watches.items():
            samples[task_id] = _sample_tree(w, our_children)
            activity[task_id] = _log_activity(w)
        reap_orphans(our_children)
        return samples, activity


def _sample_tree(w: _Watch, our_children: list[int]) -> ProcessSample:
    members = w.proc.members(our_children)
    handles: dict[int, psutil.Process] = {}
    cpu = 0.0
    rss = 0
    for proc in members:
        cached = w.handles.get(proc.pid)
        # Keep our own handle per process: cpu_percent compares with its last call.
        handle = cached if cached is not None and _same(cached, proc) else proc
        try:
            with handle.oneshot():
                cpu += handle.cpu_percent(None)
                rss += handle.memory_info().rss
        except psutil.Error:
            continue
        handles[proc.pid] = handle
    w.handles = handles
    return ProcessSample(cpu_percent=cpu, rss_bytes=rss, processes=len(handles))


def _same(a: psutil.Process, b: psutil.Process) -> bool:
    try:
        return a.create_time() == b.create_time()
    except psutil.Error:
        return False


def _stop_watching(w: _Watch | None) -> None:
    if w is not None and w.unwatch_log is not None:
        w.unwatch_log()


def _log_activity(w: _Watch) -> LogActivity:
    log = w.log
    if log is None:
        return LogActivity(0, None, _new_report(w))
    return LogActivity(log.size, log.mtime, _new_report(w))


def _new_report(w: _Watch) -> AgentReport | None:
    """The agent's report if the relay rewrote it since the last tick: one ``stat`` else."""
    path = report_path(w.log_path)
    try:
        changed = path.stat().st_mtime_ns
    except OSError:
        return None
    if changed == w.report_seen:
        return None
    w.report_seen = changed
    return read_report(path)
