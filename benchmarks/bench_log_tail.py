"""Open a 1 GB log and show its last 50 lines: LogTail against ``tail -n 50``.

Run: ``uv run python benchmarks/bench_log_tail.py [size_mb]``. The file is written to the
temporary folder and deleted afterwards. Also prints what indexing the whole file costs
(what scrolling to the very top does) and the memory LogTail used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from mission_control.store.logs import LogTail


def _make_log(path: Path, size: int) -> int:
    """Lines of varied length, some coloured; returns the number of lines."""
    block_lines = [
        f"{i:06d} \x1b[32mINFO\x1b[0m step {i} " + "x" * (i * 7 % 160) if i % 50 else f"{i:06d} ERR"
        for i in range(20_000)
    ]
    block = ("\n".join(block_lines) + "\n").encode()
    lines = 0
    with path.open("wb") as f:
        written = 0
        while written < size:
            f.write(block)
            written += len(block)
            lines += len(block_lines)
        f.write(b"the very last line\n")
    return lines + 1


def main() -> None:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    folder = Path(tempfile.mkdtemp(prefix="bench-log-tail-"))
    path = folder / "big.log"
    try:
        print(f"writing {size_mb} MB to {path} …", flush=True)
        lines = _make_log(path, size_mb << 20)
        print(f"{path.stat().st_size / 1e9:.2f} GB, {lines:,} lines")

        tracemalloc.start()
        began = time.perf_counter()
        tail = LogTail(path)
        ours = tail.get_lines(tail.line_count - 50, 50)
        ours_s = time.perf_counter() - began
        _, open_peak = tracemalloc.get_traced_memory()

        tail_bin = shutil.which("tail")
        if tail_bin:
            began = time.perf_counter()
            out = subprocess.run(
                [tail_bin, "-n", "50", str(path)], capture_output=True, check=True
            ).stdout
            tail_s = time.perf_counter() - began
            theirs = out.decode("utf-8", errors="replace").splitlines()
            assert ours == theirs, "LogTail and tail disagree on the last 50 lines"
            print(f"tail -n 50 (process included): {tail_s * 1000:8.1f} ms")
        peak_mb = open_peak / 1e6
        print(f"LogTail open + last 50 lines:  {ours_s * 1000:8.1f} ms  (peak {peak_mb:.1f} MB)")

        began = time.perf_counter()
        while not tail.complete:  # what scrolling to the top does, all at once
            tail.extend_backwards(16 << 20)
        index_s = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
        assert tail.line_count == lines
        assert tail.get_lines(lines - 1, 1) == ["the very last line"]
        print(
            f"LogTail index whole file:      {index_s * 1000:8.1f} ms  (peak {peak / 1e6:.1f} MB)"
        )

        began = time.perf_counter()
        found = tail.find("the very last", 0)
        find_s = time.perf_counter() - began
        assert found == lines - 1
        print(f"LogTail search first to last:  {find_s * 1000:8.1f} ms")
        tail.close()
        tracemalloc.stop()
    finally:
        if path.exists():
            os.unlink(path)
        folder.rmdir()


if __name__ == "__main__":
    main()
