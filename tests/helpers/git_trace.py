"""Counting the git commands a piece of code starts, from git's own trace2 events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """From now on every git command leaves its trace in the folder returned."""
    trace = tmp_path / "trace2"
    trace.mkdir()
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    return trace


def git_commands(trace: Path) -> list[str]:
    """The git commands (not git's own helpers) traced so far, oldest first; clears the trace."""
    started: list[tuple[str, str]] = []
    for file in trace.iterdir():
        for line in file.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "start" and "/" not in event["sid"]:
                started.append((event["time"], " ".join(event["argv"][1:])))
        file.unlink()
    return [argv for _, argv in sorted(started)]
