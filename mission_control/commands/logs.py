"""``logs``: print an attempt's log, or follow it while the run goes on."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..engine.recovery import exit_file_for
from ..engine.states import ACTIVE
from ..errors import SetupError
from ..headless import EXIT_OK
from ..store.logs import run_dir, stream_path
from ..store.runs import AttemptRecord, RunRecord, RunStore, process_alive
from .common import read_run, state_dir_of

if TYPE_CHECKING:
    from ..store.watch import LogWatcher

_FOLLOW_POLL = 0.5
"""Seconds between looks at the ledger while following (log growth wakes it sooner)."""
_DRIVER_GRACE = 3.0
"""Seconds a run may look undriven (starting, changing hands) before a follower gives up."""
_DETACHED_WAIT = 30.0
"""Seconds to wait for a run started with ``run --detach`` to be recorded by its driver."""


def cmd_logs(args: argparse.Namespace) -> int:
    if args.follow:
        _wait_for_detached_run(state_dir_of(args), args.run)
    store, record = read_run(args)
    chosen = _pick_attempt(store, record, args.task, args.attempt, wait=args.follow)
    path = Path(chosen.log_path)
    if args.raw and stream_path(path).exists():
        path = stream_path(path)  # an agent's: its log is the transcript made of this
    out = LogOutput(sys.stdout.buffer, plain=not args.raw and not sys.stdout.isatty())
    if args.follow:
        return follow_log(store, chosen, path, out)
    if not path.exists():
        raise SetupError(f"log {path} is missing: it was removed after the run")
    with path.open("rb") as log:
        while chunk := log.read(1 << 16):
            out.write(chunk)
    out.flush()
    return EXIT_OK


class LogOutput:
    """Where ``logs`` writes; ``plain`` (into a pipe or a file) drops colour and other
    escape sequences, keeping the text."""

    def __init__(self, stream: BinaryIO, *, plain: bool) -> None:
        self._stream = stream
        self._plain = plain
        self._held = b""  # an unfinished line: an escape sequence may go on in the next chunk

    def write(self, chunk: bytes) -> None:
        if not self._plain:
            self._stream.write(chunk)
            return
        data = self._held + chunk
        cut = data.rfind(b"\n") + 1
        self._held = data[cut:]
        self._stream.write(_ESCAPES.sub(b"", data[:cut]))

    def flush(self) -> None:
        if self._plain and self._held:
            self._stream.write(_ESCAPES.sub(b"", self._held))
            self._held = b""
        self._stream.flush()


_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def _pick_attempt(
    store: RunStore, record: RunRecord, task: str, number: int | None, *, wait: bool
) -> AttemptRecord:
    """The attempt to show (the last by default); ``wait``: while the run is driven, wait
    for its first attempt (``logs -f`` right after ``run --detach``)."""
    names = [w.task_id for w in store.workstreams(record.run_id)]
    if task not in names:
        raise SetupError(
            f"{task} is not a workstream of run {record.run_id} (workstreams: {', '.join(names)})"
        )
    driver = _DriverWatch(store, record.run_id)
    while not (attempts := store.attempts(record.run_id, task)):
        if not (wait and driver.live()):
            raise SetupError(
                f"{task} has no attempt in run {record.run_id} ({record.status}):"
                " it never started; `mission-control status` says why"
            )
        time.sleep(_FOLLOW_POLL)
    if number is None:
        return attempts[-1]
    match = [a for a in attempts if a.attempt == number]
    if not match:
        raise SetupError(f"{task} has attempts 1..{attempts[-1].attempt}, not {number}")
    return match[0]


class _DriverWatch:
    """Whether a mission-control still drives a run, forgiving a short spell with none
    (between recording the run and claiming it, or while `attach` takes it over)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self._undriven_since: float | None = None

    def live(self) -> bool:
        run = self._store.get_run(self._run_id)
        if run is None or run.finished:
            return False
        if self._store.owner_alive(run):
            self._undriven_since = None
            return True
        now = time.monotonic()
        if self._undriven_since is None:
            self._undriven_since = now
        return now - self._undriven_since < _DRIVER_GRACE


def _attempt_over(store: RunStore, attempt: AttemptRecord, driver: _DriverWatch) -> bool:
    """True when nothing more will be written to the attempt's log: it ended and its
    finishing steps (check, commit, push, PR) are over, or no one is left to write."""
    attempts = store.attempts(attempt.run_id, attempt.task_id)
    current = next((a for a in attempts if a.attempt == attempt.attempt), None)
    ws = store.workstream(attempt.run_id, attempt.task_id)
    if current is None or ws is None:
        return True
    if current.ended_at is not None and (ws.attempts > current.attempt or ws.state not in ACTIVE):
        return True
    if driver.live():
        return False
    # No driver: only the tool itself may still write, until it exits.
    if exit_file_for(Path(current.log_path)).exists() or current.pid is None:
        return True
    return not process_alive(current.pid, current.pid_create_time or 0.0)


def follow_log(
    store: RunStore,
    attempt: AttemptRecord,
    path: Path,
    out: LogOutput,
    watcher: LogWatcher | None = None,
) -> int:
    """Print ``path`` (the attempt's log or raw stream) as it grows, until ``_attempt_over``
    (Ctrl-C stops sooner). The log watcher says when it grew; the ledger is looked at
    every ``_FOLLOW_POLL`` for the attempt's end."""
    from ..store.watch import shared_watcher

    driver = _DriverWatch(store, attempt.run_id)
    grew = threading.Event()
    unwatch = (watcher or shared_watcher()).watch(path, lambda _grew: grew.set())
    with contextlib.ExitStack() as files:
        files.callback(unwatch)
        log: BinaryIO | None = None
        try:
            while True:
                # Decided before reading: whatever was written before it is printed below.
                over = _attempt_over(store, attempt, driver)
                fresh = log is None and path.exists()
                if fresh:
                    log = files.enter_context(path.open("rb"))
                # Read what is there, then only what the watcher says was added.
                if log is not None and (fresh or over or grew.is_set()):
                    grew.clear()  # before reading: bytes written meanwhile set it again
                    while chunk := log.read(1 << 16):
                        out.write(chunk)
                    out.flush()
                if over:
                    if log is None:
                        raise SetupError(f"log {path} is missing: it was removed after the run")
                    return EXIT_OK
                grew.wait(_FOLLOW_POLL)  # kept set: the next pass reads
        except KeyboardInterrupt:
            return EXIT_OK


def _wait_for_detached_run(state_dir: Path, run_id: str | None) -> None:
    """Right after ``run --detach`` its driver may not have recorded the run yet: wait."""
    runs = state_dir / "runs"
    if not runs.is_dir():
        return
    if run_id is None:  # the newest run folder; run ids sort by start time
        run_id = max((p.name for p in runs.iterdir() if p.is_dir()), default=None)
        if run_id is None:
            return
    driver_log = run_dir(state_dir, run_id) / "driver.log"
    try:
        fresh = time.time() - driver_log.stat().st_mtime < 2 * _DETACHED_WAIT
    except OSError:
        return
    if not fresh:
        return
    with RunStore(state_dir) as store:
        deadline = time.monotonic() + _DETACHED_WAIT
        while store.get_run(run_id) is None:
            if time.monotonic() > deadline:
                raise SetupError(
                    f"run {run_id}, started in the background, was not recorded after"
                    f" {_DETACHED_WAIT:g} s: its driver's output is in {driver_log}"
                )
            time.sleep(0.2)
