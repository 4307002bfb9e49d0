"""An agent's stream, transcript and totals survive a crash of mission-control.

The agent is a stand-in CLI that prints a recorded claude stream (what the real claude
printed against the scripted model) a line at a time, through a tool with claude's adapter,
so it runs under the relay as claude does. mission-control is SIGKILLed while it works; the
agent and its relay go on alone; ``resume`` then reads what they left: the attempt ends
succeeded with every token counted and the whole transcript in its log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from mission_control.agents.report import read_report, summarize_stream
from mission_control.store.logs import report_path, stream_path
from tests.conftest import GitRepo
from tests.helpers import mc_argv

pytestmark = pytest.mark.slow

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "recorded"


def _plan(tmp: Path, repo: GitRepo) -> Path:
    cli = tmp / "slow-claude"
    cli.write_text(
        "#!/bin/sh\n"
        f"while IFS= read -r line; do printf '%s\\n' \"$line\"; sleep 0.7; done"
        f" < '{RECORDED / 'claude-write.jsonl'}'\n"
        "echo hello > HELLO.md\n"
    )
    cli.chmod(0o755)
    doc = {
        "version": 1,
        "name": "crash",
        "tools": {
            "slow-claude": {
                "argv": [str(cli)],
                "prompt_via": "stdin",
                "events": "claude-stream-json",
            }
        },
        "defaults": {
            "repo": str(repo.path),
            "base_branch": "main",
            "timeout_minutes": 2,
            "pr": False,
            "tool": "slow-claude",
        },
        "phases": [
            {
                "id": "PH",
                "max_parallel_workstreams": 1,
                "workstreams": [{"id": "A", "prompt": "write HELLO.md"}],
            }
        ],
    }
    path = tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _state(plan: Path) -> dict[str, object]:
    out = subprocess.run(
        mc_argv("status", "--json", state=plan.parent / ".mission-control"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data: dict[str, object] = json.loads(out.stdout)
    return data


def test_an_agent_keeps_its_stream_and_totals_through_a_crash(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, git_repo)
    driver = subprocess.Popen(
        mc_argv("run", str(plan), "--headless", state=tmp_path / ".mission-control"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    logs = tmp_path / ".mission-control" / "runs"
    deadline = time.monotonic() + 60
    log: Path | None = None
    while log is None or (r := read_report(report_path(log))) is None or r.lines < 2:
        assert time.monotonic() < deadline, "the agent never reported"
        found = list(logs.glob("*/PH/A/attempt-1.log"))
        log = found[0] if found else None
        time.sleep(0.1)
    os.kill(driver.pid, signal.SIGKILL)  # mission-control dies; the agent does not
    driver.wait(timeout=30)
    exit_file = log.with_suffix(".exit")
    while not exit_file.exists():
        assert time.monotonic() < deadline + 60, "the agent did not end on its own"
        time.sleep(0.2)

    resumed = subprocess.run(
        mc_argv("resume", "--headless", state=tmp_path / ".mission-control"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (ws,) = _state(plan)["workstreams"]  # type: ignore[misc]
    assert ws["state"] == "succeeded", ws["detail"]
    expected = summarize_stream("claude-stream-json", RECORDED / "claude-write.jsonl")
    assert expected is not None
    attempt = ws["history"][0]
    assert attempt["session_id"] == expected.session_id
    assert attempt["tokens"]["input"] == expected.input_tokens
    assert attempt["tokens"]["output"] == expected.output_tokens
    assert attempt["cost_usd"] == pytest.approx(expected.cost_usd)
    raw = stream_path(log).read_bytes()
    assert raw.startswith((RECORDED / "claude-write.jsonl").read_bytes())
    transcript = log.read_text()
    assert "▸ Write HELLO.md" in transcript and "■ agent ended" in transcript
