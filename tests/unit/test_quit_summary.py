"""Leaving the app prints what became of the run and the command to type next."""

from __future__ import annotations

from pathlib import Path

from mission_control.store.runs import RunStore
from tests.conftest import GitRepo
from tests.engine.engine_helpers import write_plan, ws
from tests.helpers import wait_for, wait_for_pids
from tests.helpers.terminal import Terminal

DEADLINE = 90.0


def test_stop_all_prints_the_summary_and_how_to_resume(git_repo: GitRepo, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("A", "--pid-file", str(pid_file), "--sleep", "120")])],
        pr={"enabled": False},
    )
    state = tmp_path / "state"
    args = ["-m", "mission_control", "tui", str(plan.path), "--state-dir", str(state)]
    with Terminal(args, cols=120, rows=40) as term:
        wait_for_pids(pid_file, {"main": 1}, timeout=DEADLINE)
        assert wait_for(lambda: "Quit" in term.output, timeout=DEADLINE)
        term.send("q")
        assert wait_for(lambda: "Stop all (s)" in term.output, timeout=DEADLINE), term.output[
            -2000:
        ]
        term.send("s")
        assert term.proc.wait(DEADLINE) == 130
        assert wait_for(lambda: "continues it" in term.output, timeout=10)
        out = term.output
    [run] = RunStore(state).list_runs(5)
    assert f"run {run.run_id}: " in out  # the summary's totals line
    assert "P1::A" in out
    assert f"stopped: `mission-control resume {run.run_id} --state-dir {state}` continues it" in out
