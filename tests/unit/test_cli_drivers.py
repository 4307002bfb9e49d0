"""One driver per branch and worktree, and handing a run from one driver to another.

Real ``python -m mission_control`` processes on a real repository (bare ``origin``,
the scripted agent): two drivers of one plan or one branch, ``run --detach`` with its
options, and ``attach`` taking a run from a driver in the background or (only with
``--force``) in the foreground.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mission_control.plan.model import Plan
from mission_control.store.runs import RunRecord, RunStore
from tests.conftest import GitRepo
from tests.engine.engine_helpers import write_plan, ws
from tests.helpers import read_pids, wait_for, wait_for_pids
from tests.helpers.terminal import Terminal

NO_PR = {"enabled": False}
DEADLINE = 90.0
"""Seconds a run of a few short agents gets to end on a busy machine."""


def _mc(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mission_control", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mission_control", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def _stopped_at_end(*procs: subprocess.Popen[str]) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.send_signal(signal.SIGINT)  # the second one kills its agents
        for proc in procs:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _only_run(state: Path) -> RunRecord:
    assert wait_for(lambda: bool((state / "state.db").exists() and RunStore(state).list_runs(1)),
                    timeout=DEADLINE)  # fmt: skip
    runs = RunStore(state).list_runs(5)
    assert len(runs) == 1, [r.run_id for r in runs]
    return runs[0]


def _finished(state: Path, run_id: str) -> RunRecord:
    def done() -> bool:
        record = RunStore(state).get_run(run_id)
        return record is not None and record.finished

    assert wait_for(done, timeout=DEADLINE, step=0.2), RunStore(state).workstreams(run_id)
    record = RunStore(state).get_run(run_id)
    assert record is not None
    return record


def _owned_by(state: Path, run_id: str, pid: int) -> bool:
    record = RunStore(state).get_run(run_id)
    return record is not None and record.owner_pid == pid


def _owner(state: Path, run_id: str) -> int | None:
    record = RunStore(state).get_run(run_id)
    return None if record is None else record.owner_pid


# ------------------------------------------------------------ one driver per branch


def test_a_second_run_of_a_plan_being_driven_is_refused_with_the_owner(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("A", "--pid-file", str(pid_file), "--sleep", "60")])],
        pr=NO_PR,
    )
    first = _start("run", str(plan.path), "--headless")
    with _stopped_at_end(first):
        wait_for_pids(pid_file, {"main": 1}, timeout=DEADLINE)
        state = plan.path.parent / ".mission-control"
        record = _only_run(state)

        second = _mc("run", str(plan.path), "--headless")
        assert second.returncode == 2, second.stdout + second.stderr
        [line] = second.stderr.splitlines()
        assert f"branch ws/P1/A of {git_repo.path} is driven by mission-control pid" in line
        assert f"pid {first.pid} (run {record.run_id})" in line
        assert f"mission-control attach {record.run_id}" in line
        with Terminal(["-m", "mission_control", "tui", str(plan.path)]) as app:
            assert app.proc.wait(DEADLINE) == 2  # refused the same way, before the app opens
            assert wait_for(lambda: f"pid {first.pid}" in app.output), app.output
        assert len(read_pids(pid_file)["main"]) == 1  # no second agent in the worktree
        assert len(RunStore(state).list_runs(5)) == 1  # and no second run recorded
        assert first.poll() is None


def test_two_plans_naming_one_branch_get_one_driver(git_repo: GitRepo, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.jsonl"
    phases = [("P1", 1, [ws("A", "--pid-file", str(pid_file), "--sleep", "60")])]
    one = write_plan(tmp_path, git_repo.path, phases, pr=NO_PR)
    (tmp_path / "other").mkdir()
    two = write_plan(tmp_path / "other", git_repo.path, phases, pr=NO_PR)
    first = _start("run", str(one.path), "--headless")
    with _stopped_at_end(first):
        wait_for_pids(pid_file, {"main": 1}, timeout=DEADLINE)
        second = _mc("run", str(two.path), "--headless")  # its own state folder
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"ws/P1/A of {git_repo.path} is driven by mission-control pid {first.pid}" in (
            second.stderr
        )
        assert len(read_pids(pid_file)["main"]) == 1
        assert not (tmp_path / "other" / ".mission-control" / "state.db").exists()


def test_two_runs_started_at_the_same_instant_get_one_driver(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                2,
                [
                    ws("A", "--pid-file", str(pid_file), "--write", "a.txt=a", "--sleep", "1"),
                    ws("B", "--pid-file", str(pid_file), "--write", "b.txt=b", "--sleep", "1"),
                ],
            )
        ],
        pr=NO_PR,
    )
    procs = [_start("run", str(plan.path), "--headless") for _ in range(2)]
    with _stopped_at_end(*procs):
        outs = [p.communicate(timeout=DEADLINE) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    refused = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode == 2)
    assert "one driver per branch and worktree" in refused
    assert len(read_pids(pid_file)["main"]) == 2  # one agent per workstream, not two
    assert git_repo.git("show", "ws/P1/A:a.txt") == "a"
    assert len(git_repo.git("rev-list", "main..ws/P1/A").split()) == 1


# -------------------------------------------------------------------- run --detach


def test_detach_keeps_max_parallel_keep_going_and_phase(git_repo: GitRepo, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            ("P0", 1, [ws("Z", "--write", "z.txt=z")]),
            (
                "P1",
                4,
                [
                    ws("F", "--sleep", "0.5", "--exit", "3"),
                    *(ws(w, "--sleep", "0.5", "--write", f"{w}.txt={w}") for w in "BCD"),
                ],
            ),
            ("P2", 1, [ws("L", "--write", "l.txt=l")]),
        ],
        pr=NO_PR,
    )
    state = tmp_path / "state"
    out = _mc("run", str(plan.path), "--detach", "--max-parallel", "1", "--keep-going",
              "--phase", "P1", "--state-dir", str(state))  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = _finished(state, _only_run(state).run_id)
    assert record.options["max_parallel"] == 1 and record.options["keep_going"] is True
    assert record.options["phase"] == "P1"
    store = RunStore(state)
    attempts = store.attempts(record.run_id)
    assert sorted(a.task_id for a in attempts) == ["P1::B", "P1::C", "P1::D", "P1::F"]
    spans = sorted((a.started_at, a.ended_at or 0.0) for a in attempts)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, spans  # never two attempts at once: the peak is 1


# ------------------------------------------------------------------------ attach


def test_attach_refuses_a_foreground_run_without_force(git_repo: GitRepo, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("A", "--pid-file", str(pid_file), "--sleep", "60")])],
        pr=NO_PR,
    )
    state = tmp_path / "state"
    first = _start("run", str(plan.path), "--headless", "--state-dir", str(state))
    with _stopped_at_end(first):
        wait_for_pids(pid_file, {"main": 1}, timeout=DEADLINE)
        run_id = _only_run(state).run_id
        attach = _mc("attach", run_id, "--state-dir", str(state))
        assert attach.returncode == 2, attach.stdout + attach.stderr
        [line] = attach.stderr.splitlines()
        assert f"driven in the foreground by mission-control pid {first.pid}" in line
        assert f"attach {run_id} --force" in line
        assert first.poll() is None and _owned_by(state, run_id, first.pid)


def _held_until_released(tmp_path: Path, git_repo: GitRepo) -> tuple[Plan, Path]:
    """A one-workstream plan whose tool writes a.txt once the test creates ``release``."""
    release = tmp_path / "release"
    line = f"while [ ! -e {release} ]; do sleep 0.1; done; echo a > a.txt"
    step = {"id": "A", "name": "A", "tool": "shell", "command": [line], "shell": True}
    return write_plan(tmp_path, git_repo.path, [("P1", 1, [step])], pr=NO_PR), release


def _agent_pid(state: Path, run_id: str) -> int | None:
    attempts = RunStore(state).attempts(run_id)
    return attempts[0].pid if attempts else None


def test_attach_force_takes_a_foreground_run_which_says_so_and_exits_3(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan, release = _held_until_released(tmp_path, git_repo)
    state = tmp_path / "state"
    first = _start("run", str(plan.path), "--headless", "--state-dir", str(state))
    with _stopped_at_end(first):
        run_id = _only_run(state).run_id
        assert wait_for(lambda: _agent_pid(state, run_id) is not None, timeout=DEADLINE)
        agent = _agent_pid(state, run_id)
        attach = ["-m", "mission_control", "attach", run_id, "--force", "--state-dir", str(state)]
        with Terminal(attach) as term:
            out, _err = first.communicate(timeout=DEADLINE)
            assert first.returncode == 3, (out, term.output[-2000:])
            assert f"run {run_id} is taken over by another mission-control" in out
            assert wait_for(lambda: _owned_by(state, run_id, term.proc.pid), timeout=DEADLINE)
            release.touch()
            term.close()  # leave the app: the run goes on in the background
            term.proc.wait(45)
    record = _finished(state, run_id)
    assert record.status == "succeeded", RunStore(state).workstreams(run_id)
    [attempt] = RunStore(state).attempts(run_id)
    assert attempt.pid == agent  # adopted, not started again
    assert git_repo.git("show", "ws/P1/A:a.txt") == "a"


def test_attach_takes_a_background_run_over_without_force(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan, release = _held_until_released(tmp_path, git_repo)
    state = tmp_path / "state"
    assert _mc("run", str(plan.path), "--detach", "--state-dir", str(state)).returncode == 0
    run_id = _only_run(state).run_id
    assert wait_for(lambda: _agent_pid(state, run_id) is not None, timeout=DEADLINE)
    driver = _owner(state, run_id)
    assert driver is not None
    # While it drives, a second `run` and a `resume` are refused, naming it.
    again = _mc("run", str(plan.path), "--headless", "--state-dir", str(state))
    assert again.returncode == 2 and f"pid {driver}" in again.stderr
    resumed = _mc("resume", run_id, "--headless", "--state-dir", str(state))
    assert resumed.returncode == 2 and f"pid {driver}" in resumed.stderr

    with Terminal(["-m", "mission_control", "attach", run_id, "--state-dir", str(state)]) as term:
        assert wait_for(lambda: _owned_by(state, run_id, term.proc.pid), timeout=DEADLINE)
        log = (state / "runs" / run_id / "driver.log").read_text()
        assert f"run {run_id} is taken over by another mission-control" in log
        assert wait_for(lambda: _ended(driver), timeout=DEADLINE)
        release.touch()
        term.close()
        term.proc.wait(45)
    record = _finished(state, run_id)
    assert record.status == "succeeded", RunStore(state).workstreams(run_id)
    assert len(RunStore(state).attempts(run_id)) == 1


# ------------------------------------------------------------ a closed terminal


def _agents_gone(pids: list[int]) -> bool:
    """No agent process is left, not even as a zombie nobody reaps."""
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).status()
            return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("close_after", "stalled"),
    [(0.0, False), (0.0, True), (1.0, True), (2.5, True)],
    ids=["at-once", "stalled-at-once", "stalled-1s", "stalled-2.5s"],
)
def test_a_closed_terminal_hands_the_run_to_a_background_driver(
    git_repo: GitRepo, tmp_path: Path, close_after: float, stalled: bool
) -> None:
    pid_file = tmp_path / "pids.jsonl"
    busy = ["--lines", "300", "--rate", "100", "--color", "--sleep", "3"]
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                2,
                [
                    ws("A", "--pid-file", str(pid_file), *busy, "--write", "a.txt=a"),
                    ws("B", "--pid-file", str(pid_file), *busy, "--write", "b.txt=b"),
                ],
            )
        ],
        pr=NO_PR,
    )
    state = tmp_path / "state"
    with Terminal(["-m", "mission_control", "run", str(plan.path), "--state-dir", str(state)],
                  cols=220, rows=60) as term:  # fmt: skip
        assert wait_for(lambda: (state / "state.db").exists(), timeout=DEADLINE), term.output
        run_id = _only_run(state).run_id
        assert wait_for(lambda: _owned_by(state, run_id, term.proc.pid), timeout=DEADLINE)
        if stalled:
            term.pause()  # a terminal that stopped reading: the app's writes back up
        wait_for(lambda: False, timeout=close_after)
        term.close()
        # The app exits by itself, well before a successor would end it as hung.
        term.proc.wait(45)
    record = _finished(state, run_id)
    assert record.status == "succeeded", RunStore(state).workstreams(run_id)
    driver_log = state / "runs" / run_id / "driver.log"
    # The driver prints its summary just after it records the run's end.
    wait_for(lambda: "2 succeeded" in driver_log.read_text(), timeout=DEADLINE)
    log = driver_log.read_text()
    assert "2 succeeded" in log, log
    assert "hangs: ending it" not in log
    assert git_repo.git("show", "ws/P1/A:a.txt") == "a"
    assert git_repo.git("show", "ws/P1/B:b.txt") == "b"
    agents = read_pids(pid_file).get("main", [])
    assert agents and wait_for(lambda: _agents_gone(agents), timeout=30)


def test_a_headless_run_whose_terminal_closes_goes_on_in_the_background(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan, release = _held_until_released(tmp_path, git_repo)
    state = tmp_path / "state"
    args = ["-m", "mission_control", "run", str(plan.path), "--headless", "--state-dir", str(state)]
    with Terminal(args) as term:
        run_id = _only_run(state).run_id
        assert wait_for(lambda: _agent_pid(state, run_id) is not None, timeout=DEADLINE)
        term.close()
        assert term.proc.wait(45) == 0
    assert wait_for(lambda: _owner(state, run_id) not in (None, term.proc.pid), timeout=DEADLINE)
    release.touch()
    record = _finished(state, run_id)
    assert record.status == "succeeded", RunStore(state).workstreams(run_id)
    assert len(RunStore(state).attempts(run_id)) == 1  # the agent was adopted


def _ended(pid: int) -> bool:
    """Gone, or a zombie: an orphan may be handed to this test process (a child
    subreaper after the engine tests), which reaps it only when it waits."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
