"""The app's terminal driver never blocks on a terminal that is gone.

Textual's own driver hangs there: its writer thread dies on the first failed write
and every later write, and ``close``, wait for room in a queue nobody empties. The
integration test (a real pty closed under the app) is in
``tests/unit/test_cli_drivers.py``; this one pins the driver itself.
"""

from __future__ import annotations

import errno
import io
import threading

import pytest
from textual.drivers._writer_thread import WriterThread

from mission_control.tui.terminal import TerminalDriver


class _GoneTerminal(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.EIO, "Input/output error")


@pytest.fixture
def driver() -> TerminalDriver:
    # Only the writer is under test: no app, no terminal modes, no signal handlers.
    return TerminalDriver.__new__(TerminalDriver)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_writes_and_close_return_once_the_terminal_is_gone(driver: TerminalDriver) -> None:
    writer = WriterThread(_GoneTerminal())
    writer.start()
    driver._writer_thread = writer
    done = threading.Event()

    def shut_down() -> None:
        for _ in range(200):  # far more than the writer's queue holds
            driver.write("\x1b[?25h")
        driver.close()
        done.set()

    threading.Thread(target=shut_down, daemon=True).start()
    assert done.wait(60), "the driver blocked on a dead terminal"
    assert not writer.is_alive()


def test_close_waits_for_a_live_writer_to_flush(driver: TerminalDriver) -> None:
    out = io.StringIO()
    writer = WriterThread(out)
    writer.start()
    driver._writer_thread = writer
    for _ in range(100):
        driver.write("x")
    driver.close()
    assert not writer.is_alive()
    assert out.getvalue() == "x" * 100
