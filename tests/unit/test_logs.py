"""Log paths, LogTail on real (and large) files, and LogWatcher with real writer processes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mission_control.store.logs import (
    MAX_LINE_BYTES,
    LogTail,
    SearchPatternError,
    attempt_log_path,
)
from mission_control.store.watch import LogGrew, LogWatcher


def _write(path: Path, lines: list[str], tail: str = "") -> None:
    path.write_bytes(("".join(f"{line}\n" for line in lines) + tail).encode())


def _append(path: Path, text: str) -> None:
    with path.open("ab") as f:
        f.write(text.encode())


# --------------------------------------------------------------------------- paths


def test_attempt_log_path_layout(tmp_path: Path) -> None:
    path = attempt_log_path(tmp_path, "20261128-153012-ab12", "PH-07", "WS-07A", 2)
    assert path == tmp_path / "runs" / "20261128-153012-ab12" / "PH-07" / "WS-07A" / "attempt-2.log"
    assert "::" not in str(path.relative_to(tmp_path))


@pytest.mark.parametrize("bad", ["PH::WS", "a/b", "..", "", "x\\y", "c:d", "bad\n"])
def test_attempt_log_path_refuses_unsafe_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        attempt_log_path(tmp_path, "r", bad, "WS", 1)


def test_attempt_numbers_start_at_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        attempt_log_path(tmp_path, "r", "P", "W", 0)


# --------------------------------------------------------------------------- LogTail


def test_small_file_lines_and_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    _write(path, ["one", "two", "three"], tail="Continue? [y/n] ")
    with LogTail(path) as tail:
        assert tail.complete and tail.line_count == 3
        assert tail.get_lines(0, 10) == ["one", "two", "three"]
        assert tail.get_lines(2, 1) == ["three"]
        assert tail.partial_line() == "Continue? [y/n] "
        assert tail.get_lines(3, 1) == []
        assert tail.refresh() == 0
        _append(path, "y\nfour\nfi")
        assert tail.refresh() == 2
        assert tail.get_lines(3, 5) == ["Continue? [y/n] y", "four"]
        assert tail.partial_line() == "fi"
        _append(path, "ve\n")
        assert tail.refresh() == 1
        assert tail.get_lines(5, 1) == ["five"] and tail.partial_line() == ""


def test_lines_keep_ansi_and_survive_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "b.log"
    long_line = b"y" * (MAX_LINE_BYTES * 3)
    path.write_bytes(
        b"\x1b[1;32mPASS\x1b[0m tests\r\n" + b"caf\xc3\xa9 \xff\xfe\n" + long_line + b"\nend\n"
    )
    with LogTail(path) as tail:
        lines = tail.get_lines(0, 10)
        assert lines[0] == "\x1b[1;32mPASS\x1b[0m tests"
        assert lines[1] == "café \ufffd\ufffd"
        assert lines[2].startswith("yyy") and lines[2].endswith("…")
        assert len(lines[2]) < MAX_LINE_BYTES + 10
        assert lines[3] == "end"
        # search still sees the whole long line
        _append(path, "y" * 10 + "NEEDLE\n")
        tail.refresh()
        assert tail.find("NEEDLE", 0) == 4


def test_missing_file_appears_later(tmp_path: Path) -> None:
    path = tmp_path / "later.log"
    with LogTail(path) as tail:
        assert not tail.exists and tail.line_count == 0 and tail.refresh() == 0
        _write(path, ["a", "b"])
        assert tail.refresh() == 2
        assert tail.get_lines(0, 2) == ["a", "b"]


def test_truncation_and_replacement_restart_the_index(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    _write(path, [f"old {i}" for i in range(100)])
    with LogTail(path) as tail:
        gen = tail.generation
        path.write_bytes(b"new 0\n")  # truncated in place
        assert tail.refresh() == 1
        assert tail.generation == gen + 1
        assert tail.get_lines(0, 5) == ["new 0"]
        # rewritten to a longer size between two refreshes: still noticed
        _write(path, [f"rewritten line {i}" for i in range(3)])
        tail.refresh()
        assert tail.generation == gen + 2
        assert tail.get_lines(0, 5) == [f"rewritten line {i}" for i in range(3)]
        # replaced by another file (rotation)
        other = tmp_path / "c.log.new"
        _write(other, ["rotated"])
        os.replace(other, path)
        assert tail.refresh() == 1
        assert tail.generation == gen + 3 and tail.get_lines(0, 1) == ["rotated"]


def test_extend_backwards_keeps_a_stable_numbering(tmp_path: Path) -> None:
    path = tmp_path / "d.log"
    expected = [f"line {i:05d} " + "z" * (i % 37) for i in range(5000)]
    _write(path, expected)
    with LogTail(path, tail_bytes=10_000) as tail:
        assert not tail.complete
        shown = tail.line_count
        assert 0 < shown < 5000
        assert tail.get_lines(0, shown) == expected[-shown:]
        stable = 0 - tail.prepended  # the first line we saw, in never-shifting numbers
        added = tail.extend_backwards(8_000)
        assert added > 0 and added % 64 == 0  # whole index groups until the start
        assert tail.get_lines(stable + tail.prepended, 1) == [expected[-shown]]
        while not tail.complete:
            tail.extend_backwards(8_000)
        assert tail.line_count == 5000 and tail.prepended == 5000 - shown
        assert tail.get_lines(0, 5000) == expected
        assert tail.get_lines(stable + tail.prepended, 1) == [expected[-shown]]


def test_search_next_previous_regex_and_case(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    lines = [f"row {i}" for i in range(1000)]
    for i in (10, 500, 990):
        lines[i] += " ERROR: boom"
    lines[700] += " error: quiet"
    _write(path, lines, tail="ERROR in the partial line")
    with LogTail(path) as tail:
        assert tail.find("ERROR", 0) == 10
        assert tail.find("ERROR", 11) == 500  # next
        assert tail.find("ERROR", 991) is None  # the partial line is not searched
        assert tail.find("ERROR", 989, backwards=True) == 500  # previous
        assert tail.find("ERROR", 500, backwards=True) == 500
        assert tail.find("ERROR", 9, backwards=True) is None
        assert tail.find("error", 501) == 700
        assert tail.find("error", 501, ignore_case=True) == 700
        assert tail.find("ERROR", 501, ignore_case=True) == 700
        assert tail.find(r"row 9\d\d ERROR", 0, regex=True) == 990
        assert tail.find(r"^row 5\d\d ", 0, regex=True) == 500
        assert tail.find("row 1 ", 0) is None and tail.find("row 1", 0) == 1
        assert tail.find("", 0) is None
        with pytest.raises(SearchPatternError, match="bad search pattern"):
            tail.find("([", 0, regex=True)


# --------------------------------------------------------------------------- a 200 MB log

_BIG_LINES = 2_300_000


def _big_line(i: int) -> str:
    colour = "\x1b[33mwarn\x1b[0m " if i % 1000 == 0 else ""
    return f"{i:08d} {colour}" + "x" * (i % 150)


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("big") / "big.log"
    with path.open("wb") as f:
        step = 100_000
        for begin in range(0, _BIG_LINES, step):
            chunk = "".join(_big_line(i) + "\n" for i in range(begin, begin + step))
            f.write(chunk.encode())
    assert path.stat().st_size > 190_000_000
    yield path
    path.unlink()


def test_big_log_opens_fast_with_bounded_memory(big_log: Path) -> None:
    tracemalloc.start()
    try:
        began = time.perf_counter()
        tail = LogTail(big_log)
        last = tail.get_lines(tail.line_count - 50, 50)
        opened = time.perf_counter() - began
        assert last == [_big_line(i) for i in range(_BIG_LINES - 50, _BIG_LINES)]
        assert opened < 2.0
        assert not tail.complete

        # previous match far above the indexed window is not in the window yet
        assert tail.find("00001234 ", tail.line_count - 1, backwards=True) is None
        while not tail.complete:
            tail.extend_backwards(16 << 20)
        assert tail.complete and tail.line_count == _BIG_LINES
        assert tail.get_lines(0, 3) == [_big_line(i) for i in range(3)]
        assert tail.get_lines(1_234_567, 1) == [_big_line(1_234_567)]
        assert tail.find("00001234 ", _BIG_LINES - 1, backwards=True) == 1234
        assert tail.find("02000000 ", 0) == 2_000_000
        assert tail.find("warn", 1001) == 2000
        _, peak = tracemalloc.get_traced_memory()
        tail.close()
    finally:
        tracemalloc.stop()
    assert peak < 30 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


# --------------------------------------------------------------------------- LogWatcher

_WRITER = textwrap.dedent(
    """
    import sys, time
    path, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with open(path, "a", buffering=1) as f:
        for i in range(count):
            f.write(f"written {i}\\n")
            f.flush()
            if pause:
                time.sleep(pause)
    """
)


def _run_writer(path: Path, count: int, pause: float) -> None:
    subprocess.run([sys.executable, "-c", _WRITER, str(path), str(count), str(pause)], check=True)


def _wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture(params=["inotify", "polling"])
def watcher(request: pytest.FixtureRequest) -> Iterator[LogWatcher]:
    if request.param == "inotify":
        if not sys.platform.startswith("linux"):
            pytest.skip("inotify is Linux only")
        w = LogWatcher(use_inotify=True)  # refuses to start without inotify
    else:
        w = LogWatcher(use_inotify=False)
    yield w
    w.close()


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def test_watcher_fires_for_a_subprocess_appending(tmp_path: Path, watcher: LogWatcher) -> None:
    path = _empty(tmp_path / "w.log")
    tail = LogTail(path)
    seen: list[int] = []
    lock = threading.Lock()

    def on_change(grew: LogGrew) -> None:
        assert grew.path == path
        with lock:
            tail.refresh()
            seen.append(tail.line_count)

    watcher.watch(path, on_change)
    _run_writer(path, 6, 0.1)
    assert _wait_for(lambda: bool(seen) and seen[-1] == 6)
    assert len(seen) >= 2  # heard while the writer was still going
    assert tail.get_lines(0, 6) == [f"written {i}" for i in range(6)]
    tail.close()


def test_watcher_coalesces_a_flood(tmp_path: Path) -> None:
    path = _empty(tmp_path / "flood.log")
    calls: list[float] = []
    with LogWatcher() as watcher:
        watcher.watch(path, lambda _p: calls.append(time.monotonic()))
        began = time.monotonic()
        _run_writer(path, 20_000, 0.0)
        assert _wait_for(lambda: bool(calls) and path.stat().st_size > 0)
        time.sleep(0.2)  # the trailing callback
        elapsed = time.monotonic() - began
    assert calls
    assert len(calls) <= elapsed / watcher.min_interval + 2, (len(calls), elapsed)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(g >= watcher.min_interval * 0.9 for g in gaps), gaps


def test_watcher_waits_for_a_missing_file(tmp_path: Path, watcher: LogWatcher) -> None:
    path = tmp_path / "sub" / "not-yet.log"
    fired = threading.Event()
    watcher.watch(path, lambda _p: fired.set())
    time.sleep(0.1)
    assert not fired.is_set()
    path.parent.mkdir()
    _run_writer(path, 1, 0.0)
    assert fired.wait(3.0)


def test_unwatch_stops_callbacks(tmp_path: Path, watcher: LogWatcher) -> None:
    kept_path = _empty(tmp_path / "kept.log")
    dropped_path = _empty(tmp_path / "dropped.log")
    kept: list[LogGrew] = []
    dropped: list[LogGrew] = []
    watcher.watch(kept_path, kept.append)
    unwatch = watcher.watch(dropped_path, dropped.append)
    # a second watch of the same file survives the first one's removal
    also: list[LogGrew] = []
    watcher.watch(dropped_path, also.append)
    unwatch()
    _append(dropped_path, "x\n")
    _append(kept_path, "x\n")
    assert _wait_for(lambda: bool(kept) and bool(also))
    time.sleep(0.3)
    assert dropped == []


def test_closed_watcher_refuses_new_watches(tmp_path: Path) -> None:
    w = LogWatcher()
    w.close()
    w.close()
    with pytest.raises(RuntimeError):
        w.watch(tmp_path / "x.log", lambda _p: None)


def test_replay_tells_a_late_subscriber_the_size_at_once(
    tmp_path: Path, watcher: LogWatcher
) -> None:
    path = tmp_path / "late.log"
    _run_writer(path, 3, 0.0)
    heard: list[LogGrew] = []
    told = threading.Event()

    def on_change(grew: LogGrew) -> None:
        heard.append(grew)
        told.set()

    watcher.watch(path, on_change, replay=True)
    assert told.wait(5.0)
    st = path.stat()
    assert heard == [LogGrew(path, st.st_size, st.st_mtime)]


def test_each_subscription_is_coalesced_at_its_own_interval(tmp_path: Path) -> None:
    path = _empty(tmp_path / "paced.log")
    quick: list[float] = []
    slow: list[float] = []
    with LogWatcher() as watcher:
        watcher.watch(path, lambda _g: quick.append(time.monotonic()))
        watcher.watch(path, lambda _g: slow.append(time.monotonic()), min_interval=0.5)
        began = time.monotonic()
        _run_writer(path, 40, 0.05)
        assert _wait_for(lambda: bool(slow) and bool(quick))
        time.sleep(0.6)  # the trailing callbacks
        elapsed = time.monotonic() - began
    assert len(slow) <= elapsed / 0.5 + 2, (len(slow), elapsed)
    assert all(g >= 0.5 * 0.9 for g in (b - a for a, b in itertools.pairwise(slow)))
    assert len(quick) > len(slow)


def test_rescan_looks_at_once(tmp_path: Path) -> None:
    path = _empty(tmp_path / "asked.log")
    heard: list[LogGrew] = []
    with LogWatcher(use_inotify=False, poll_interval=3600) as watcher:
        watcher.watch(path, heard.append)
        _run_writer(path, 2, 0.0)
        time.sleep(0.3)
        assert heard == []  # it looks only when asked
        watcher.rescan()
        assert _wait_for(lambda: len(heard) == 1)
    assert heard[0].size == path.stat().st_size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
def test_a_flooded_file_is_told_to_its_last_byte_and_heard_again_once_quiet(
    tmp_path: Path,
) -> None:
    """A writer faster than the subscription's interval is polled rather than watched;
    the last size still comes, and once the file is quiet a single line is heard."""
    path = _empty(tmp_path / "flooded.log")
    heard: list[LogGrew] = []
    with LogWatcher(use_inotify=True) as watcher:
        watcher.watch(path, heard.append, min_interval=0.2)
        _run_writer(path, 20_000, 0.0)
        size = path.stat().st_size
        assert _wait_for(lambda: bool(heard) and heard[-1].size == size)
        time.sleep(0.5)  # a poll finds it unchanged
        told = len(heard)
        _run_writer(path, 1, 0.0)
        assert _wait_for(lambda: len(heard) > told and heard[-1].size == path.stat().st_size)
