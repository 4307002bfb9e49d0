"""Who drives a run: a process named by pid *and* start time, since pids are reused."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Final

import psutil

CREATE_TIME_TOLERANCE: Final = 1.0
"""Seconds two readings of one process's start time may differ (boot time is re-read)."""


def process_identity(pid: int | None = None) -> tuple[int, float]:
    """``(pid, start time)`` of a process (this one by default): the owner identity."""
    proc = psutil.Process(os.getpid() if pid is None else pid)
    return proc.pid, proc.create_time()


def process_alive(pid: int, create_time: float) -> bool:
    """True when ``pid`` still runs and is the same process that started at ``create_time``."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # it exists; we just may not look at it


def same_process(pid: int, create_time: float, other_pid: int, other_time: float) -> bool:
    return pid == other_pid and abs(create_time - other_time) <= CREATE_TIME_TOLERANCE


def format_start(at: float | None) -> str:
    """A process start time for messages."""
    if at is None:
        return "unknown time"
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")
