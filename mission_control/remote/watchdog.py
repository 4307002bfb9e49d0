"""Stops an attempt's processes on a node when the process that supervised them dies.

A node-side attempt lives in a Ray actor. When the actor is killed (by
mission-control, by Ray, by the OOM killer) its own cleanup never runs, and
the tool, its children and any daemon they forked would be left running. So
each actor starts this small process first: it holds the read end of a pipe
whose write end only the actor has, and blocks on it. End of file means the
actor is gone (or done): every process that carries the attempt's mark in its
environment gets TERM, then KILL after the grace period.

It detaches (a second fork) so that it is not the actor's child: Ray kills a
dying worker's direct children, and this process must outlive the actor.

Usage: ``python -m mission_control.remote.watchdog MARK_NAME MARK_VALUE GRACE``
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..engine.process_tree import is_alive, processes_with_env, signal_all


def start_watchdog(mark_name: str, mark_value: str, grace: float) -> int:
    """Start the watchdog; returns the write end of its pipe (close it to trigger the sweep)."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, False)
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mission_control.remote.watchdog",
            mark_name,
            mark_value,
            str(grace),
        ],
        stdin=read_end,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    os.close(read_end)
    launcher.wait()  # the launcher exits once the detached watchdog runs
    return write_end


def sweep(markers: dict[str, str], grace: float) -> list[int]:
    """TERM every marked process, wait up to ``grace`` s, KILL what is left; the pids hit."""
    me = {os.getpid()}
    procs = processes_with_env(markers, exclude=me)
    hit = signal_all(procs, signal.SIGTERM)
    signal_all(procs, signal.SIGCONT)  # a paused tree handles TERM only once continued
    deadline = time.monotonic() + grace
    while any(is_alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(3):
        left = processes_with_env(markers, exclude=me)
        if not left:
            break
        hit += signal_all(left, signal.SIGKILL)
        time.sleep(0.05)
    return hit


def main(argv: list[str]) -> int:
    name, value, grace = argv[0], argv[1], float(argv[2])
    if os.fork() > 0:
        return 0  # the launcher: its parent reaps it at once
    os.setsid()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    while os.read(0, 4096):
        pass
    sweep({name: value}, grace)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
