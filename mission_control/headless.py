"""Running a plan without the TUI: signals, reporters and the exit code.

First Ctrl-C stops starting work and stops running workstreams gracefully, a
second one kills them; a closed terminal (SIGHUP) detaches, leaving the agents
running for ``resume`` (or the background driver ``hand_over`` starts) to adopt.
``SIGUSR1`` is another mission-control taking the run over (``attach``): this one
says so, lets go and exits with its own code. Exit codes: 0 all succeeded, 1 some
did not, 3 taken over, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import IO

from .engine.engine import Engine
from .report import JsonReporter, LineReporter

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TAKEN_OVER = 3
EXIT_INTERRUPTED = 130

TAKE_OVER_SIGNAL = signal.SIGUSR1
"""What ``attach`` sends the driver of a run it takes over."""
MESSAGES_SIGNAL = signal.SIGUSR2
"""What ``continue`` sends the driver of a run once it left a message in the ledger."""


async def run_headless(
    engine: Engine,
    *,
    out: IO[str] | None = None,
    json_lines: bool = False,
    hand_over: Callable[[], object] | None = None,
) -> int:
    """Drive ``engine`` to its end; ``hand_over`` starts a driver for the run on SIGHUP."""
    stream = out if out is not None else sys.stdout
    reporter: LineReporter | None = None
    if json_lines:
        engine.subscribe(JsonReporter(stream))
    else:
        reporter = LineReporter(engine.snapshot(), stream, color=stream.isatty())
        engine.subscribe(reporter)  # the engine publishes nothing before run()

    loop = asyncio.get_running_loop()
    interrupts = 0
    pending: set[asyncio.Task[None]] = set()
    detached = False
    taken_over = False

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        kill = interrupts > 1
        stream.write(
            "\nstopping: killing every workstream now\n"
            if kill
            else "\nstopping: no new work; running workstreams get SIGTERM (Ctrl-C again to kill)\n"
        )
        stream.flush()
        pending.add(loop.create_task(engine.cancel(kill=kill)))

    def on_hangup() -> None:
        nonlocal detached
        if not detached and hand_over is not None:
            hand_over()  # first: the run must go on whatever happens to this process
        detached = True
        pending.add(loop.create_task(engine.detach()))

    def on_take_over() -> None:
        nonlocal detached, taken_over
        with contextlib.suppress(OSError):  # the terminal may be gone
            stream.write(
                f"\nrun {engine.run_id} is taken over by another mission-control (`attach`):"
                " this one lets go; the agents keep running under it\n"
            )
            stream.flush()
        detached = taken_over = True
        pending.add(loop.create_task(engine.detach()))

    installed: list[signal.Signals] = []
    for signum, handler in (
        (signal.SIGINT, on_interrupt),
        (signal.SIGTERM, on_interrupt),
        (signal.SIGHUP, on_hangup),
        (TAKE_OVER_SIGNAL, on_take_over),
        (MESSAGES_SIGNAL, lambda: pending.add(loop.create_task(engine.check_messages()))),
    ):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, handler)
            installed.append(signum)
    try:
        ok = await engine.run()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    if taken_over:
        return EXIT_TAKEN_OVER
    if detached:
        return EXIT_INTERRUPTED
    if reporter is not None:
        with contextlib.suppress(OSError):
            stream.write("\n" + reporter.summary() + "\n")
            stream.flush()
    if interrupts:
        return EXIT_INTERRUPTED
    return EXIT_OK if ok else EXIT_FAILED
