"""The engine's one source of time: readings for records and timers that fire later.

Every timer of the engine (an attempt's timeout, a retry's backoff) goes through
a ``Clock``, so a test drives the whole life of a workstream with a clock it
moves by hand instead of sleeping. The real clock is the wall clock for
readings and the running event loop for timers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch: what the store and the events record."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` on the engine's loop after ``delay`` seconds."""
        ...


class LoopClock:
    """Readings from ``wall`` (the wall clock); timers on ``loop``, else the running loop."""

    def __init__(
        self, wall: Callable[[], float] = time.time, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._wall = wall
        self._loop = loop

    def now(self) -> float:
        return self._wall()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return (self._loop or asyncio.get_running_loop()).call_later(delay, callback)


def as_clock(clock: Clock | Callable[[], float]) -> Clock:
    """A ``Clock`` from either a clock or a bare function that reads the time."""
    if callable(clock):
        return LoopClock(clock)
    return clock


__all__ = ["Clock", "LoopClock", "Timer", "as_clock"]
