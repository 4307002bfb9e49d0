"""Attempt log paths, and ``LogTail``: a reader for huge, growing log files.

A tool may write gigabytes of output, and a view only ever shows a screenful. So
``LogTail`` never holds a file in memory; it reads the way ``less`` does:

- ``os.pread`` by byte offset, so readers in several threads never share a file position;
- a sparse index of line starts: the offset of every 64th line in an ``array('Q')``
  (8 bytes per 64 lines: a 1 GB log of 100-byte lines costs about 1.3 MB); a line is
  found by reading its group of at most 64 lines, and decoded groups are kept in a small
  LRU bounded by size;
- lazy indexing from the end: opening indexes only the last ``tail_bytes`` (4 MiB by
  default), so the last lines show at once whatever the size. Scrolling above the indexed
  window calls ``extend_backwards``, which prepends older lines. Line numbers count from
  the first *indexed* line, so they shift when older lines are prepended: ``prepended``
  says by how much in total, and ``index - prepended`` is a number that never changes
  (until ``generation`` changes: the file was truncated or replaced and is read anew).
  This was chosen over indexing the whole file in a background thread because the common
  case (follow the end) then costs nothing, and memory stays bounded either way;
- ``refresh`` reads only the bytes added since the previous call; an unterminated last
  line is held back (see ``partial_line``) until its newline arrives.

Lines keep their ANSI escape codes: the view renders them. Decoding is UTF-8 with
replacement, so a binary blob cannot break a view, and a line longer than
``MAX_LINE_BYTES`` is cut for display.
"""

from __future__ import annotations

import os
import re
import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..errors import MissionControlError

GROUP: Final = 64
"""Lines per index mark."""
TAIL_BYTES: Final = 4 << 20
"""Bytes indexed when a file is opened, and by each ``extend_backwards`` step."""
CHUNK: Final = 1 << 20
"""Bytes read at once while scanning."""
MAX_LINE_BYTES: Final = 64 << 10
"""Longer lines are cut to this many bytes for display (search still sees all of them)."""
CACHE_BYTES: Final = 8 << 20
"""Rough bound of the decoded-line cache."""
_SEARCH_OVERLAP: Final = 4096
"""Bytes repeated between chunks when a single line is longer than a chunk."""

_GROUP_RE: Final = re.compile(rb"(?:[^\n]*+\n){%d}" % GROUP)
"""Matches ``GROUP`` whole lines in C: only one Python step per 64 lines while indexing."""
_UNSAFE_CHARS: Final = frozenset('/\\:<>"|?*')


class SearchPatternError(MissionControlError):
    """A log search pattern that is not a valid regular expression."""


def run_dir(state_dir: Path, run_id: str) -> Path:
    """``<state>/runs/<run>``: the run's logs and its background driver's output."""
    return Path(state_dir) / "runs" / run_id


def attempt_log_path(state_dir: Path, run_id: str, phase_id: str, ws_id: str, attempt: int) -> Path:
    """``<state>/runs/<run>/<PHASE>/<WS>/attempt-<n>.log``: no ``::`` or other character
    Windows refuses in a file name."""
    for what, part in (("run id", run_id), ("phase id", phase_id), ("workstream id", ws_id)):
        if not part or part in (".", "..") or any(c in _UNSAFE_CHARS or ord(c) < 32 for c in part):
            raise ValueError(f"{what} {part!r} cannot be a folder name")
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    return run_dir(state_dir, run_id) / phase_id / ws_id / f"attempt-{attempt}.log"


def stream_path(log_path: Path) -> Path:
    """``attempt-<n>.stream``: an agent's output exactly as its CLI wrote it (``logs --raw``).
    The log beside it holds the readable transcript the relay makes of it."""
    return log_path.with_suffix(".stream")


def report_path(log_path: Path) -> Path:
    """``attempt-<n>.agent.json``: the agent's running totals (``agents.report``)."""
    return log_path.with_suffix(".agent.json")


def inbox_path(log_path: Path) -> Path:
    """``attempt-<n>.inbox/``: messages waiting to reach the running agent."""
    return log_path.with_suffix(".inbox")


def file_size(path: Path) -> int:
    """The file's size in bytes; 0 while it does not exist (blocking: one stat)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


if hasattr(os, "pread"):

    def _pread(fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

else:  # Windows: no pread; callers hold the tail's lock, so seek+read is safe.

    def _pread(fd: int, size: int, offset: int) -> bytes:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)


def _decode(raw: bytes) -> str:
    cut = len(raw) > MAX_LINE_BYTES
    if cut:
        raw = raw[:MAX_LINE_BYTES]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    text = raw.decode("utf-8", errors="replace")
    return text + " …" if cut else text


@dataclass(slots=True)
class _Group:
    """Up to ``GROUP`` decoded lines and their start offsets."""

    starts: list[int]
    lines: list[str]
    cost: int


class LogTail:
    """Random access to the lines of one log file, which may grow while it is read.

    Thread-safe. Every method reads the file: call them off the event loop (a view reading
    the few lines it shows from a cached group is cheap, as in toolong).
    """

    def __init__(self, path: Path | str, *, tail_bytes: int = TAIL_BYTES) -> None:
        self.path = Path(path)
        self._tail_bytes = max(1, tail_bytes)
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._file_id: tuple[int, int] | None = None
        self.generation = 0
        """Bumped when the file was truncated or replaced and is read from scratch."""
        self.prepended = 0
        """Lines put before the first indexed line since the last reset."""
        self._reset_index()
        self._open()

    # -- lifecycle

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> LogTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reset_index(self) -> None:
        self._head = array("Q")  # dense starts of the < GROUP lines before the first mark
        self._marks = array("Q")  # start of every GROUP-th line of the marked region
        self._marked = 0  # lines in the marked region
        self._start = 0  # offset of the first indexed line
        self._end = 0  # offset after the last complete line
        self._size = 0  # bytes of the file seen so far
        self._cache: OrderedDict[int, _Group] = OrderedDict()
        self._cache_cost = 0

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return  # not written yet: ``refresh`` opens it when it appears
        st = os.fstat(fd)
        self._fd = fd
        self._file_id = (st.st_dev, st.st_ino)
        size = st.st_size
        start = 0
        if size > self._tail_bytes:
            lo = size - self._tail_bytes
            found = self._next_line_start(lo, size)
            # No line starts in the last bytes: they end one long line; begin where it does.
            start = found if found is not None else self._line_start_containing(lo)
        self._start = self._end = start
        self._scan(start, size)
        self._size = size

    # -- state

    @property
    def exists(self) -> bool:
        return self._fd is not None

    @property
    def line_count(self) -> int:
        """Complete lines indexed (the unterminated last line is not counted)."""
        return len(self._head) + self._marked

    @property
    def complete(self) -> bool:
        """True when the index reaches the first byte of the file."""
        return self._start == 0

    @property
    def size(self) -> int:
        """Bytes of the file seen by the last ``refresh``."""
        return self._size

    # -- reading

    def get_lines(self, start: int, count: int) -> list[str]:
        """Up to ``count`` lines from ``start`` (fewer at the end of the index)."""
        with self._lock:
            first = max(0, start)
            last = min(self.line_count, start + count)
            out: list[str] = []
            i = first
            while i < last:
                begin, end, idx = self._locate(i)
                group = self._group(begin, end, idx)
                take = min(last - i, len(group.lines) - idx)
                out.extend(group.lines[idx : idx + take])
                i += take
            return out

    def partial_line(self) -> str:
        """The unterminated last line seen so far (a prompt waiting for input, say), or ''."""
        with self._lock:
            if self._fd is None or self._size <= self._end:
                return ""
            return _decode(
                _pread(self._fd, min(self._size - self._end, MAX_LINE_BYTES + 1), self._end)
            )

    # -- growing the index

    def refresh(self) -> int:
        """Index bytes written since the last call; returns how many complete lines arrived.

        When the file was truncated, rewritten or replaced, the index starts again from its
        end: ``generation`` goes up and the return value is the new ``line_count``.
        """
        with self._lock:
            if self._fd is None:
                self._open()
                if self._fd is None:
                    return 0
                self.generation += 1
                return self.line_count
            if self._replaced():
                return self._restart()
            size = os.fstat(self._fd).st_size
            if size < self._size or (self._end > 0 and _pread(self._fd, 1, self._end - 1) != b"\n"):
                return self._restart()
            if size == self._size:
                return 0
            before = self.line_count
            self._scan(self._end, size)
            self._size = size
            return self.line_count - before

    def extend_backwards(self, max_bytes: int | None = None) -> int:
        """Index about ``max_bytes`` more of the file before the indexed window.

        Returns the number of lines prepended: every line index grows by it. Keeps
        whole groups of lines, so it may read more than ``max_bytes`` when lines are long.
        """
        with self._lock:
            if self._fd is None or self._start == 0:
                return 0
            step = max(1, max_bytes or self._tail_bytes)
            end = self._start
            lo = max(0, end - step)
            while True:
                first = self._next_line_start(lo, end)
                if first is None:
                    first = self._line_start_containing(lo)
                count = self._count_newlines(first, end)
                if first == 0 or count >= GROUP:
                    break
                lo = max(0, lo - step)
            extra = count % GROUP
            pos = first
            head = array("Q")
            for _ in range(extra):
                head.append(pos)
                pos = self._next_newline(pos, end) + 1  # found: ``end`` follows a newline
            if first > 0:
                head = array("Q")  # keep groups whole; those lines come with the next step
            marks = array("Q")
            self._index_lines(pos, end, 0, marks)
            self._marks = marks + self._marks
            self._marked += len(marks) * GROUP
            self._head = head
            self._start = first if first == 0 else pos
            added = count if first == 0 else count - extra
            self.prepended += added
            return added

    # -- search

    def find(
        self,
        pattern: str,
        start: int,
        *,
        backwards: bool = False,
        regex: bool = False,
        ignore_case: bool = False,
    ) -> int | None:
        """Index of the first line at or after ``start`` (or at or before it, ``backwards``)
        that contains ``pattern``, among the indexed lines; ``None`` when there is none.

        Reads the file a chunk at a time. Matches are on raw bytes, so text split by an
        ANSI escape code in the middle is not found.
        """
        flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
        if not pattern:
            return None
        source = pattern.encode("utf-8")
        try:
            rx = re.compile(source if regex else re.escape(source), flags)
        except re.error as err:
            raise SearchPatternError(
                f"bad search pattern {pattern!r}: {err}; fix it or search for plain text"
            ) from err
        with self._lock:
            count = self.line_count
            if self._fd is None or count == 0:
                return None
            if backwards:
                if start < 0:
                    return None
                return self._find_backwards(rx, min(start, count - 1))
            if start >= count:
                return None
            return self._find_forwards(rx, max(0, start))

    def _find_forwards(self, rx: re.Pattern[bytes], start: int) -> int | None:
        assert self._fd is not None
        pos = self._line_start(start)
        stop = self._end
        while pos < stop:
            data = _pread(self._fd, min(CHUNK, stop - pos), pos)
            if not data:
                return None
            advance = len(data)
            if pos + len(data) < stop:
                cut = data.rfind(b"\n")
                if cut >= 0:  # whole lines only, so no match is split
                    data = data[: cut + 1]
                    advance = cut + 1
                else:  # one line longer than a chunk
                    advance = max(1, len(data) - _SEARCH_OVERLAP)
            match = rx.search(data)
            if match is not None and pos + match.start() < stop:
                return self._line_at(pos + match.start())
            pos += advance
        return None

    def _find_backwards(self, rx: re.Pattern[bytes], start: int) -> int | None:
        assert self._fd is not None
        end = self._line_end(start)
        floor = self._start
        while end > floor:
            begin = max(floor, end - CHUNK)
            data = _pread(self._fd, end - begin, begin)
            next_end = begin
            if begin > floor:
                cut = data.find(b"\n")
                if cut >= 0 and cut + 1 < len(data):
                    data = data[cut + 1 :]
                    begin += cut + 1
                    next_end = begin
                else:  # one line longer than a chunk
                    next_end = min(end - 1, begin + _SEARCH_OVERLAP)
            last: re.Match[bytes] | None = None
            for match in rx.finditer(data):
                if match.start() < len(data):
                    last = match
            if last is not None:
                return min(start, self._line_at(begin + last.start()))
            end = next_end
        return None

    # -- index internals (callers hold the lock)

    def _locate(self, index: int) -> tuple[int, int, int]:
        """(group begin offset, group end offset, index within the group) of a line."""
        head = len(self._head)
        if index < head:
            end = self._marks[0] if self._marked else self._end
            return self._head[0], end, index
        g, idx = divmod(index - head, GROUP)
        return self._marks[g], self._mark_end(g), idx

    def _mark_end(self, g: int) -> int:
        return self._marks[g + 1] if g + 1 < len(self._marks) else self._end

    def _group(self, begin: int, end: int, idx: int) -> _Group:
        group = self._cache.get(begin)
        if group is not None and idx < len(group.lines):
            self._cache.move_to_end(begin)
            return group
        if group is not None:
            self._cache_cost -= group.cost
            del self._cache[begin]
        group = self._load(begin, end)
        self._cache[begin] = group
        self._cache_cost += group.cost
        while self._cache_cost > CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_cost -= old.cost
        return group

    def _load(self, begin: int, end: int) -> _Group:
        """Decode the complete lines in ``[begin, end)``."""
        assert self._fd is not None
        starts: list[int] = []
        lines: list[str] = []
        if end - begin <= CHUNK:
            data = _pread(self._fd, end - begin, begin)
            pos = 0
            while (nl := data.find(b"\n", pos)) >= 0:
                starts.append(begin + pos)
                lines.append(_decode(data[pos:nl]))
                pos = nl + 1
        else:  # very long lines: find each line's end, then read at most its first part
            pos = begin
            while pos < end:
                nl = self._next_newline(pos, end)
                if nl < 0:  # truncated under us: the next refresh starts again
                    break
                starts.append(pos)
                lines.append(_decode(_pread(self._fd, min(nl - pos, MAX_LINE_BYTES + 1), pos)))
                pos = nl + 1
        cost = sum(len(s) for s in lines) + 64 * len(lines) + 64
        return _Group(starts, lines, cost)

    def _line_start(self, index: int) -> int:
        begin, end, idx = self._locate(index)
        return self._group(begin, end, idx).starts[idx]

    def _line_end(self, index: int) -> int:
        """Offset just after the newline of line ``index``."""
        return self._line_start(index + 1) if index + 1 < self.line_count else self._end

    def _line_at(self, offset: int) -> int:
        """Index of the line holding byte ``offset`` (which is inside the index)."""
        head = len(self._head)
        if head and (not self._marked or offset < self._marks[0]):
            return bisect_right(self._head, offset) - 1
        g = max(0, bisect_right(self._marks, offset) - 1)
        last = min(GROUP, self._marked - g * GROUP) - 1  # ask for all: the cache may be short
        group = self._group(self._marks[g], self._mark_end(g), last)
        return head + g * GROUP + max(0, bisect_right(group.starts, offset) - 1)

    def _scan(self, line_start: int, stop: int) -> None:
        """Index the complete lines in ``[line_start, stop)`` at the end of the index."""
        self._marked, self._end = self._index_lines(line_start, stop, self._marked, self._marks)

    def _index_lines(self, pos: int, end: int, seen: int, marks: array[int]) -> tuple[int, int]:
        """Walk the complete lines of ``[pos, end)``, appending to ``marks`` the start of each
        line whose number (counting on from ``seen``) is a multiple of ``GROUP``.

        Returns the new line count and the offset after the last complete line.
        """
        fd = self._fd_checked()
        line_start = pos
        read_pos = pos
        while read_pos < end:
            data = _pread(fd, min(CHUNK, end - read_pos), read_pos)
            if not data:
                break
            base = read_pos
            read_pos += len(data)
            if line_start < base:  # finish a line begun in an earlier chunk
                nl = data.find(b"\n")
                if nl < 0:
                    continue
                if seen % GROUP == 0:
                    marks.append(line_start)
                seen += 1
                i = nl + 1
            else:
                i = line_start - base
            while True:
                if seen % GROUP == 0:
                    match = _GROUP_RE.match(data, i)
                    if match is not None:
                        marks.append(base + i)
                        seen += GROUP
                        i = match.end()
                        continue
                nl = data.find(b"\n", i)
                if nl < 0:
                    break
                if seen % GROUP == 0:
                    marks.append(base + i)
                seen += 1
                i = nl + 1
            line_start = base + i
        return seen, line_start

    def _count_newlines(self, begin: int, end: int) -> int:
        assert self._fd is not None
        total = 0
        pos = begin
        while pos < end:
            data = _pread(self._fd, min(CHUNK, end - pos), pos)
            if not data:
                break
            total += data.count(b"\n")
            pos += len(data)
        return total

    def _next_newline(self, pos: int, end: int) -> int:
        """Offset of the first newline in ``[pos, end)``, or -1."""
        fd = self._fd_checked()
        while pos < end:
            data = _pread(fd, min(CHUNK, end - pos), pos)
            if not data:
                break
            nl = data.find(b"\n")
            if nl >= 0:
                return pos + nl
            pos += len(data)
        return -1

    def _next_line_start(self, lo: int, stop: int) -> int | None:
        """First line start in ``[lo, stop)`` (0 when ``lo`` is 0), if any."""
        if lo == 0:
            return 0
        nl = self._next_newline(lo - 1, stop)
        return nl + 1 if 0 <= nl < stop - 1 else None

    def _line_start_containing(self, pos: int) -> int:
        """Start of the line holding byte ``pos``: just after the previous newline, or 0."""
        fd = self._fd_checked()
        end = pos
        while end > 0:
            begin = max(0, end - CHUNK)
            nl = _pread(fd, end - begin, begin).rfind(b"\n")
            if nl >= 0:
                return begin + nl + 1
            end = begin
        return 0

    def _fd_checked(self) -> int:
        assert self._fd is not None
        return self._fd

    def _replaced(self) -> bool:
        """True when the path now names another file than the one open (rotation)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False  # removed: keep reading what is open
        return (st.st_dev, st.st_ino) != self._file_id

    def _restart(self) -> int:
        self.close()
        self._reset_index()
        self.prepended = 0
        self.generation += 1
        self._open()
        return self.line_count
