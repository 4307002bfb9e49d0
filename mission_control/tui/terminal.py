"""The terminal driver: Textual's Linux driver, except that a dead terminal never blocks.

Textual writes to the terminal from one thread fed by a bounded queue. When the
terminal is closed, that thread dies on its first failed write; every later write
then waits for room in a queue nobody empties, and ``close`` waits to put its stop
mark there: the app hangs in its own shutdown, with its agents unreaped and its run
never handed on. Here every write waits at most ``WRITE_SECONDS`` and is dropped when
the writer is gone, and ``close`` gives up after ``CLOSE_SECONDS``: output to a
terminal nobody can see is worth nothing, a process that cannot exit costs the run.
"""

from __future__ import annotations

import queue
from typing import Final

from textual.drivers.linux_driver import LinuxDriver

WRITE_SECONDS: Final = 2.0
"""How long one write may wait for room in the writer's queue before it is dropped."""
CLOSE_SECONDS: Final = 2.0
"""How long closing waits for the writer to flush what it has."""


class TerminalDriver(LinuxDriver):
    """``LinuxDriver`` whose writes and close give up on a terminal that is gone."""

    def write(self, data: str) -> None:
        self._put(data)

    def close(self) -> None:
        writer = self._writer_thread
        if writer is None:
            return
        if self._put(None):
            writer.join(CLOSE_SECONDS)

    def _put(self, item: str | None) -> bool:
        """Queue ``item`` for the writer; False when it was dropped (writer gone or stuck)."""
        writer = self._writer_thread
        if writer is None or not writer.is_alive():
            return False
        try:
            writer._queue.put(item, timeout=WRITE_SECONDS)
        except queue.Full:
            return False
        return True


__all__ = ["TerminalDriver"]
