"""The run commands from the command line: run, status, logs, conflicts and clean.

Each test runs a real plan (real repository, bare ``origin``, the scripted
agent) through ``mission_control.cli.main`` or through ``python -m
mission_control`` in a child process, then reads the run back the way a user
would. Pull requests are off (``pr: enabled: false``) so no ``gh`` is needed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mission_control.cli import main
from mission_control.plan.loader import load_plan_or_raise
from mission_control.store.runs import RunStore, WorkstreamRow
from tests.conftest import GitRepo
from tests.engine.engine_helpers import write_plan, ws
from tests.helpers import wait_for, wait_for_pids

NO_PR = {"enabled": False}
LINES = "".join(f"line {i}\n" for i in range(1, 11))


def _mc(
    *args: str, timeout: float = 60, python_flags: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -m mission_control ARGS`` as a user would run it (no terminal);
    ``python_flags``: the first two ARGS go to the interpreter (``-X importtime``)."""
    flags, rest = (list(args[:2]), args[2:]) if python_flags else ([], args)
    return subprocess.run(
        [sys.executable, *flags, "-m", "mission_control", *rest],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _sh(ws_id: str, line: str, **extra: Any) -> dict[str, Any]:
    return {"id": ws_id, "name": f"workstream {ws_id}", "tool": "shell", "command": [line],
            "shell": True, **extra}  # fmt: skip


def _worktrees(repo: GitRepo) -> list[str]:
    out = repo.git("worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def _branches(repo: GitRepo) -> list[str]:
    return repo.git("for-each-ref", "--format=%(refname:short)", "refs/heads/ws/").split()


def test_run_headless_exit_code_status_and_logs(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                2,
                [
                    ws(
                        "A",
                        "--write",
                        "a.txt=a",
                        "--lines",
                        "3",
                        checks=[{"name": "smoke", "run": "echo smoke-ok", "shell": True}],
                    ),
                    ws("F", "--exit", "3"),
                ],
            )
        ],
        pr=NO_PR,
    )
    state = str(tmp_path / "state")

    assert main(["run", str(plan.path), "--headless", "--state-dir", state]) == 1
    out = capsys.readouterr().out
    run_id = RunStore(state).list_runs(1)[0].run_id
    assert "tool 'shell' exited 3" in out
    assert f"run {run_id}: 1 failed, 1 succeeded" in out

    assert main(["status", "--state-dir", state]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run {run_id} of test plan (failed)")
    row_a = next(line for line in out.splitlines() if line.startswith("P1::A"))
    parts = row_a.split()
    assert parts[1:3] == ["succeeded", "1"] and parts[4:6] == ["ws/P1/A", "+1"]
    assert 20000 <= int(parts[3]) <= 29999  # the port its attempt had
    assert row_a.endswith("pushed to origin: 1 file changed, +1 -0")
    assert main(["status", "--state-dir", state, "--run", run_id, "--json"]) == 0
    ledger = json.loads(capsys.readouterr().out)
    by_id = {w["task_id"]: w for w in ledger["workstreams"]}
    assert by_id["P1::A"]["state"] == "succeeded"
    assert by_id["P1::A"]["head_commit"] == git_repo.git("rev-parse", "ws/P1/A")
    assert by_id["P1::F"]["state"] == "failed"

    assert main(["logs", "P1::A", "--state-dir", state]) == 0
    log = capsys.readouterr().out
    for expected in (
        "line 3 of 3",
        "──── check 'smoke': echo smoke-ok",
        "smoke-ok\n",
        "──── check ok: check 'smoke' passed",
        "──── commit ok: ",
        "──── push ok: origin/ws/P1/A",
    ):
        assert expected in log
    assert main(["logs", "P1::A", "--attempt", "2", "--state-dir", state]) == 2
    assert "P1::A has attempts 1..1, not 2" in capsys.readouterr().err
    assert main(["logs", "P1::NOPE", "--state-dir", state]) == 2
    assert "(workstreams: P1::A, P1::F)" in capsys.readouterr().err

    assert main(["conflicts", "--state-dir", state]) == 0
    assert capsys.readouterr().out == f"run {run_id}: no conflicts forecast\n"


def test_the_real_command_exits_0_on_success_and_2_on_setup_errors(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path, git_repo.path, [("P1", 1, [ws("A", "--write", "a.txt=a")])], pr=NO_PR
    )
    state = tmp_path / "state"
    done = _mc("run", str(plan.path), "--headless", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert "1 succeeded" in done.stdout
    assert "ws/P1/A" in git_repo.git("ls-remote", "--heads", "origin")

    broken = tmp_path / "broken.yaml"
    broken.write_text(plan.path.read_text().replace("tool: shell", "tool: no-such-tool", 1))
    bad = _mc("run", str(broken), "--headless", "--state-dir", str(state))
    assert bad.returncode == 2
    assert "broken.yaml:" in bad.stderr and "no-such-tool" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_reading_commands_without_runs_say_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nothing = str(tmp_path / "nothing-here")
    for command in ("status", "conflicts", "clean"):
        assert main([command, "--state-dir", nothing]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mission-control: no runs in {nothing}: ")
        assert len(err.splitlines()) == 1


def test_ctrl_c_stops_a_headless_run_with_exit_130(git_repo: GitRepo, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("S", "--pid-file", str(pid_file), "--sleep", "60")])],
        pr=NO_PR,
    )
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mission_control", "run", str(plan.path), "--headless",
         "--state-dir", str(state)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for_pids(pid_file, {"main": 1}, timeout=30)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "stopping: no new work" in out
    [record] = RunStore(state).workstreams(RunStore(state).list_runs(1)[0].run_id)
    assert record.state.value == "interrupted"


def test_dry_run_prints_branches_worktrees_and_argv_and_touches_nothing(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 2, [ws("A", "--write", "a.txt=a"), ws("B", "--lines", "1", deps=["A"])])],
    )
    assert main(["run", str(plan.path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    worktree = plan.workstream("P1::B").worktree_path
    assert "branch   ws/P1/A from origin/main, merging: none" in out
    assert "branch   ws/P1/B from origin/main, merging: P1::A" in out
    assert f"worktree {worktree}" in out
    assert "agent.py --lines 1" in out
    assert not worktree.parent.exists()
    assert git_repo.git("branch", "--list", "ws/*") == ""
    assert not (tmp_path / ".mission-control").exists()


def test_conflicts_and_status_show_forecast_pairs(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.commit_file("f.txt", LINES)
    git_repo.git("push", "-q", "origin", "main")
    edit = "sed -i 's/^line {n}$/{text}/' f.txt"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                1,
                [
                    _sh("A", edit.format(n=1, text="A was here")),
                    _sh("B", edit.format(n=1, text="B was here")),
                    _sh("C", edit.format(n=9, text="C, far away")),
                ],
            )
        ],
        pr=NO_PR,
    )
    state = str(tmp_path / "state")
    assert main(["run", str(plan.path), "--headless", "--state-dir", state]) == 0
    capsys.readouterr()

    assert main(["conflicts", "--state-dir", state]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["P1::B conflicts with P1::A: f.txt"]  # once, though both record it
    assert main(["conflicts", "--state-dir", state, "--json"]) == 0
    pairs = json.loads(capsys.readouterr().out)
    assert {"workstream": "P1::B", "with": "P1::A", "files": ["f.txt"]} in pairs
    assert all("P1::C" not in (p["workstream"], p["with"]) for p in pairs)

    assert main(["status", "--state-dir", state]) == 0
    out = capsys.readouterr().out
    assert "conflict forecast: P1::B with P1::A: f.txt" in out
    assert out.count("conflict forecast:") == 1


def test_clean_refuses_unsafe_work_and_removes_the_rest(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                3,
                [
                    ws("A", "--write", "a.txt=a"),
                    ws("B", "--write", "b.txt=b"),
                    ws("C", "--write", "c.txt=c", push=False),
                    ws("D", "--write", "d.txt=d"),
                ],
            )
        ],
        pr=NO_PR,
    )
    state = str(tmp_path / "state")
    assert main(["run", str(plan.path), "--headless", "--state-dir", state]) == 0
    capsys.readouterr()
    path = {w: plan.workstream(f"P1::{w}").worktree_path for w in "ABCD"}
    (path["B"] / "notes.txt").write_text("not committed\n")
    shutil.rmtree(path["D"])  # removed by hand: git's list still has it until pruned
    assert str(path["D"]) in _worktrees(git_repo)

    assert main(["clean", "--state-dir", state]) == 1
    out = capsys.readouterr().out
    assert f"P1::A: removed {path['A']}" in out
    assert "P1::B: refused: " in out and "uncommitted changes" in out
    assert not path["A"].exists() and not path["C"].exists()
    assert (path["B"] / "notes.txt").exists()
    assert _worktrees(git_repo) == [str(git_repo.path), str(path["B"])]  # D pruned
    assert _branches(git_repo) == ["ws/P1/A", "ws/P1/B", "ws/P1/C", "ws/P1/D"]

    assert main(["clean", "--branches", "--state-dir", state]) == 1
    out = capsys.readouterr().out
    assert "P1::A: deleted branch ws/P1/A" in out
    assert "P1::D: deleted branch ws/P1/D" in out
    assert "branch ws/P1/C is not pushed to origin nor merged into main" in out
    assert "branch ws/P1/B kept: its worktree is still there" in out
    assert _branches(git_repo) == ["ws/P1/B", "ws/P1/C"]

    assert main(["clean", "--branches", "--force", "--state-dir", state]) == 0
    out = capsys.readouterr().out
    assert f"P1::B: removed {path['B']}" in out
    assert _branches(git_repo) == []
    assert _worktrees(git_repo) == [str(git_repo.path)]
    assert "ws/P1/A" in git_repo.git("ls-remote", "--heads", "origin")  # origin untouched
    assert main(["clean", "--state-dir", state]) == 0  # nothing left to refuse


def test_clean_leaves_a_run_that_is_still_being_driven(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(
        tmp_path, git_repo.path, [("P1", 1, [ws("A", "--write", "a.txt=a")])], pr=NO_PR
    )
    state = tmp_path / "state"
    assert main(["run", str(plan.path), "--headless", "--state-dir", str(state)]) == 0
    store = RunStore(state)
    run_id = store.list_runs(1)[0].run_id
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        store.claim_owner(run_id, sleeper.pid, _create_time(sleeper.pid))
        assert main(["clean", "--state-dir", str(state)]) == 2
        assert f"still driven by pid {sleeper.pid}" in capsys.readouterr().err
        assert plan.workstream("P1::A").worktree_path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def _create_time(pid: int) -> float:
    import psutil

    return psutil.Process(pid).create_time()


def _stop_with_ctrl_c(plan: Path, state: Path, started: Path) -> None:
    """Start ``run --headless`` in a child, wait for ``started`` to appear, press Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mission_control", "run", str(plan), "--headless",
         "--state-dir", str(state)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert wait_for(started.exists, timeout=60), "the tool never started"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130


@pytest.mark.parametrize("how", ["resume", "run --resume"])
def test_a_run_stopped_with_ctrl_c_is_resumed_without_its_id(
    git_repo: GitRepo, tmp_path: Path, how: str
) -> None:
    marker = tmp_path / "started-once"
    # The first attempt waits to be stopped; the one after the resume does the work.
    line = f"if [ -e {marker} ]; then echo done > a.txt; else touch {marker}; exec sleep 60; fi"
    plan = write_plan(tmp_path, git_repo.path, [("P1", 1, [_sh("A", line)])], pr=NO_PR)
    state = tmp_path / "state"
    _stop_with_ctrl_c(plan.path, state, marker)
    [stopped] = RunStore(state).list_runs()
    assert stopped.status == "cancelled"
    [record] = RunStore(state).workstreams(stopped.run_id)
    assert record.detail == "stopped with the run: resume to start it again"

    command = ["resume"] if how == "resume" else ["run", str(plan.path), "--resume"]
    done = _mc(*command, "--headless", "--state-dir", str(state))
    assert done.returncode == 0, done.stdout + done.stderr
    [again] = RunStore(state).list_runs()  # the same run, not a new one
    assert (again.run_id, again.status) == (stopped.run_id, "succeeded")
    [record] = RunStore(state).workstreams(again.run_id)
    assert (record.state.value, record.attempts) == ("succeeded", 2)


def test_plans_sharing_a_folder_keep_their_runs_apart(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans = {}
    for name, ws_id in (("a", "A"), ("b", "B")):
        written = write_plan(
            tmp_path, git_repo.path, [("P1", 1, [_sh(ws_id, f"echo {name} > {name}.txt")])],
            pr=NO_PR,
        )  # fmt: skip
        plans[name] = written.path.rename(tmp_path / f"{name}.yaml")
    state = tmp_path / ".mission-control"  # the default beside both plans
    # Two runs whose drivers died before starting anything: a's first, b's later.
    with RunStore(state) as store:
        for at, name in ((100.0, "a"), (200.0, "b")):
            plan = load_plan_or_raise(plans[name])
            rows = [WorkstreamRow.from_workstream(w) for w in plan.workstreams]
            store.create_run(f"run-{name}", plan.path, plan.name, {}, rows, at=at)

    assert main(["status", "--plan", str(plans["a"])]) == 0
    assert capsys.readouterr().out.startswith(
        "run run-a of test plan (running, no driver: `mission-control resume run-a` continues it)"
    )
    assert main(["status", "--plan", str(plans["a"]), "--run", "run-b"]) == 2
    err = capsys.readouterr().err
    assert f"run run-b is a run of {plans['b']}, not of {plans['a']}" in err

    assert main(["resume", "--plan", str(plans["a"]), "--headless"]) == 0
    capsys.readouterr()
    with RunStore(state) as store:
        assert store.get_run("run-a").status == "succeeded"  # type: ignore[union-attr]
        assert store.get_run("run-b").status == "running"  # type: ignore[union-attr]
        assert [w.state.value for w in store.workstreams("run-b")] == ["pending"]
    assert git_repo.git("ls-remote", "--heads", "origin").count("ws/P1/") == 1


def test_headless_run_and_the_reading_commands_never_import_textual(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, git_repo.path, [("P1", 1, [ws("A", "--lines", "2")])], pr=NO_PR)
    state = str(tmp_path / "state")
    commands = [
        ["run", str(plan.path), "--headless"],
        ["status"],
        ["status", "--json"],
        ["logs", "P1::A"],
        ["conflicts"],
    ]
    for command in commands:
        done = _mc("-X", "importtime", *command, "--state-dir", state, python_flags=True)
        assert done.returncode == 0, done.stderr
        imported = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
        assert imported, done.stderr  # -X importtime did list the imports
        assert not [line for line in imported if "textual" in line or ".tui" in line], command
