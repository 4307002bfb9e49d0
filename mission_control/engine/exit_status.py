"""How an attempt ended, as the supervisor, the ledger and a remote node tell it.

A status comes from three places: ``waitpid`` of a shell we spawned (Popen style,
negative for a signal), the exit file the wrapper shell writes (a shell's ``$?``,
128+N for signal N) and, for a tree we stop, what ``terminate`` did. One small
value type for all of them, with no process handling, so readers of the ledger
and remote nodes need nothing else from the supervisor.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How an attempt ended: an exit code, a signal, or neither when unknown."""

    exit_code: int | None
    signal: int | None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        if self.exit_code is not None:
            return f"exited {self.exit_code}"
        return "exit status unknown"


UNKNOWN = ExitStatus(None, None)


@dataclass(frozen=True, slots=True)
class TerminateResult:
    """What ``terminate`` did: who got TERM, who needed KILL, who is still there."""

    terminated: tuple[int, ...]
    killed: tuple[int, ...]
    survivors: tuple[int, ...]
    """Pids of the tree still alive after SIGKILL: should always be empty."""
    status: ExitStatus | None
    """The attempt's exit status if it is known by now."""

    @property
    def clean(self) -> bool:
        return not self.survivors


def decode_status(code: int) -> ExitStatus:
    """Turn a wait status (Popen style: negative = signal) or a shell ``$?`` into ExitStatus.

    A shell reports a command killed by signal N as 128+N, so such codes are read as
    signals; a tool that itself exits 128+N is reported the same way.
    """
    if code < 0:
        return ExitStatus(None, -code)
    if 128 < code < 128 + signal.NSIG:
        return ExitStatus(None, code - 128)
    return ExitStatus(code, None)


def read_exit_file(path: Path) -> ExitStatus | None:
    """The status the wrapper shell recorded, or None if it wrote none (or not yet)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.lstrip("-").isdigit():
        return None
    return decode_status(int(text))
