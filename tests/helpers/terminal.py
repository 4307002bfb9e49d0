"""A process on a real pseudo-terminal, as a user's terminal window runs it.

The pty's slave is the child's controlling terminal (its own session), so closing
the master is what closing a terminal window does: the kernel sends SIGHUP and every
later write to the terminal fails. A thread drains the output, as a terminal would;
``pause`` stops reading, as a terminal that has stopped keeping up does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Sequence

# Runs in the child: take the pty as controlling terminal, then become the command.
_TAKE_TERMINAL = (
    "import fcntl, os, sys, termios;"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0);"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class Terminal:
    """``python ARGS`` on a new pty of ``cols`` x ``rows``."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cols: int = 160,
        rows: int = 45,
        env: dict[str, str] | None = None,
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _TAKE_TERMINAL, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "TERM": "xterm-256color", **(env or {})},
        )
        os.close(slave)
        self._master: int | None = master
        self._reading = threading.Event()
        self._reading.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        with self._lock:
            return self._output.decode("utf-8", "replace")

    def send(self, keys: str) -> None:
        assert self._master is not None
        os.write(self._master, keys.encode())

    def pause(self) -> None:
        """Stop reading the terminal's output (the child's writes back up)."""
        self._reading.clear()

    def close(self) -> None:
        """Close the terminal window: SIGHUP, and the child's terminal is gone."""
        self._stop.set()
        self._reading.set()
        self._reader.join(5)
        if self._master is not None:
            os.close(self._master)
            self._master = None

    def _read(self) -> None:
        while not self._stop.is_set():
            if not self._reading.wait(0.1):
                continue
            master = self._master
            if master is None:
                return
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed its side
                return
            if not data:
                return
            with self._lock:
                self._output += data

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
