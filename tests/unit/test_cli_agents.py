"""The agent commands from the command line: `logs` (transcript, `--raw`), `status` (the
agents' table and totals) and `continue` (its refusals), around a run whose tool prints a
recorded claude stream through claude's adapter."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import GitRepo
from tests.helpers import mc_argv

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "recorded"


@pytest.fixture
def ran(git_repo: GitRepo, tmp_path: Path) -> Path:
    """A finished run of one agent (PH::A) and a workstream that never started (PH::C)."""
    cli = tmp_path / "recorded-claude"
    cli.write_text(f"#!/bin/sh\ncat '{RECORDED / 'claude-write.jsonl'}'\necho hi > HELLO.md\n")
    cli.chmod(0o755)
    doc = {
        "version": 1,
        "name": "agents",
        "tools": {
            "recorded": {"argv": [str(cli)], "prompt_via": "stdin", "events": "claude-stream-json"}
        },
        "defaults": {
            "repo": str(git_repo.path),
            "base_branch": "main",
            "timeout_minutes": 2,
            "pr": False,
            "tool": "recorded",
        },
        "phases": [
            {
                "id": "PH",
                "max_parallel_workstreams": 1,
                "workstreams": [
                    {"id": "A", "prompt": "write HELLO.md"},
                    {"id": "B", "tool": "shell", "command": ["false"]},
                    {"id": "C", "tool": "shell", "command": ["true"], "depends_on": ["B"]},
                ],
            }
        ],
    }
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(doc))
    done = _mc(tmp_path, "run", str(plan), "--headless", "--phase", "PH")
    assert "PH::A" in done.stdout
    return tmp_path


def _mc(tmp: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mc_argv(*args, state=tmp / ".mission-control"),
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_logs_shows_the_transcript_and_raw_shows_the_stream(ran: Path) -> None:
    transcript = _mc(ran, "logs", "PH::A")
    assert transcript.returncode == 0, transcript.stderr
    assert "▸ Write HELLO.md" in transcript.stdout
    assert "\x1b" not in transcript.stdout  # into a pipe: no escape sequences
    raw = _mc(ran, "logs", "PH::A", "--raw")
    assert raw.stdout.startswith((RECORDED / "claude-write.jsonl").read_text())


def test_status_lists_each_agent_attempt_and_the_totals(ran: Path) -> None:
    table = _mc(ran, "status")
    assert "AGENT" in table.stdout and "PH::A" in table.stdout
    assert "total: " in table.stdout and " tok $" in table.stdout
    data = json.loads(_mc(ran, "status", "--json").stdout)
    (attempt,) = data["workstreams"][0]["history"]
    assert attempt["session_id"] and attempt["model"]
    assert set(attempt["tokens"]) == {"input", "output", "cached"}
    assert data["totals"]["cost_usd"] == pytest.approx(attempt["cost_usd"])


def test_continue_refuses_what_it_cannot_do_in_one_line(ran: Path) -> None:
    unknown = _mc(ran, "continue", "PH::Z", "-m", "hi")
    assert unknown.returncode == 2
    assert "PH::Z is not a workstream of run" in unknown.stderr and "PH::A" in unknown.stderr
    never = _mc(ran, "continue", "C", "-m", "hi")  # the bare id is enough when unique
    assert never.returncode == 2
    assert "PH::C has not started" in never.stderr
    empty = _mc(ran, "continue", "PH::A", "-m", "   ")
    assert empty.returncode == 2 and "the message is empty" in empty.stderr
    fifo = ran / "fifo"
    os.mkfifo(fifo)
    piped = _mc(ran, "continue", "PH::A", "--message-file", str(fifo))
    assert piped.returncode == 2 and "--message-file" in piped.stderr
    for done in (unknown, never, empty, piped):
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
