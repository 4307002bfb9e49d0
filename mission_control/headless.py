"""Running a plan without the TUI: signals, reporters and the exit code.

First Ctrl-C stops starting work and stops running workstreams gracefully, a
second one kills them; a closed terminal (SIGHUP) detaches, leaving the agents
running for ``resume`` to adopt. Exit codes: 0 all succeeded, 1 some did not,
130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import IO

from .engine.engine import Engine
from .report import JsonReporter, LineReporter

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


async def run_headless(
    engine: Engine, *, out: IO[str] | None = None, json_lines: bool = False
) -> int:
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
        detached = True
        pending.add(loop.create_task(engine.detach()))

    installed: list[signal.Signals] = []
    for signum, handler in (
        (signal.SIGINT, on_interrupt),
        (signal.SIGTERM, on_interrupt),
        (signal.SIGHUP, on_hangup),
    ):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, handler)
            installed.append(signum)
    try:
        ok = await engine.run()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    if detached:
        return EXIT_INTERRUPTED
    if reporter is not None:
        with contextlib.suppress(OSError):
            stream.write("\n" + reporter.summary() + "\n")
            stream.flush()
    if interrupts:
        return EXIT_INTERRUPTED
    return EXIT_OK if ok else EXIT_FAILED
