"""A new run of a plan meets the branches its earlier runs left.

Without a choice it stops and lists them (exit 2), touching nothing;
``--continue-branches`` builds on them; ``--fresh`` starts each from the base,
keeping the old tip (and any uncommitted work) under ``refs/mission-control/old/``.
Resuming a run is not a new run. Real repositories, a bare ``origin``, the
scripted agent as the tool.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mission_control.cli import main
from mission_control.commands.resume import stored_options
from mission_control.engine import events as ev
from mission_control.engine.states import WsState
from mission_control.errors import SetupError
from mission_control.plan.model import Plan
from mission_control.store.runs import RunStore
from tests.conftest import GitRepo
from tests.engine.engine_helpers import Recorder, make_engine, write_plan, ws

NO_PR = {"enabled": False}


def _plan(tmp_path: Path, repo: GitRepo) -> Plan:
    return write_plan(
        tmp_path,
        repo.path,
        [("P1", 2, [ws("A", "--append", "notes.txt=one more line"), ws("B", "--lines", "1")])],
        pr=NO_PR,
    )


async def _first_run(plan: Plan, state: Path) -> str:
    engine = make_engine(plan, state)
    assert await engine.run() is True
    return engine.run_id


def _runs(state: Path) -> int:
    return len(RunStore(state).list_runs(50))


async def test_a_new_run_stops_on_earlier_work_and_lists_it(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _plan(tmp_path, git_repo)
    state = tmp_path / ".mission-control"
    await _first_run(plan, state)
    tip = git_repo.git("rev-parse", "ws/P1/A")

    with pytest.raises(SetupError) as refused:
        make_engine(plan, state)
    message = str(refused.value)
    assert "ws/P1/A (1 commit not on origin/main)" in message
    assert "ws/P1/B" not in message  # B changed nothing: nothing to build on
    assert "--continue-branches" in message and "--fresh" in message

    capsys.readouterr()
    assert main(["run", str(plan.path), "--headless"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ws/P1/A (1 commit not on origin/main)" in err
    # ... the same in the foreground for a run meant for the background
    assert main(["run", str(plan.path), "--detach"]) == 2
    assert "ws/P1/A" in capsys.readouterr().err
    assert _runs(state) == 1  # nothing was recorded, nothing moved
    assert git_repo.git("rev-parse", "ws/P1/A") == tip
    worktree = plan.workstream("P1::A").worktree_path
    assert (worktree / "notes.txt").read_text() == "one more line\n"


async def test_continue_branches_builds_on_the_earlier_work(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, git_repo)
    state = tmp_path / ".mission-control"
    await _first_run(plan, state)
    engine = make_engine(plan, state, existing_branches="continue")
    assert await engine.run() is True
    assert git_repo.git("show", "ws/P1/A:notes.txt") == "one more line\none more line"


async def test_fresh_starts_from_the_base_and_keeps_the_old_tip_and_uncommitted_work(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, git_repo)
    state = tmp_path / ".mission-control"
    await _first_run(plan, state)
    old_tip = git_repo.git("rev-parse", "ws/P1/A")
    worktree = plan.workstream("P1::A").worktree_path
    (worktree / "scratch.txt").write_text("left by hand\n")  # uncommitted: kept too
    # The base moved meanwhile: fresh means the base as it is now.
    git_repo.commit_file("later.txt", "later\n")
    git_repo.git("push", "-q", "origin", "main")

    engine = make_engine(plan, state, existing_branches="fresh")
    rec = Recorder(engine)
    assert await engine.run() is True

    assert git_repo.git("show", "ws/P1/A:notes.txt") == "one more line"  # once, not twice
    assert git_repo.git("rev-parse", "ws/P1/A~1") == git_repo.git("rev-parse", "main")
    assert not (worktree / "scratch.txt").exists()
    kept_ref = f"refs/mission-control/old/ws/P1/A/{engine.run_id}"
    kept = git_repo.git("rev-parse", kept_ref)
    assert git_repo.git("rev-parse", f"{kept}~1") == old_tip
    assert git_repo.git("show", f"{kept}:scratch.txt") == "left by hand"
    # The remote's copy from the earlier run is replaced by the new work.
    assert git_repo.git("rev-parse", "ws/P1/A") == git_repo.git(
        "rev-parse", "refs/heads/ws/P1/A", cwd=git_repo.origin
    )
    notes = [e.message for e in rec.events if isinstance(e, ev.EngineWarned)]
    assert any(kept_ref in note and "started again from origin/main" in note for note in notes)
    assert rec.states["P1::A"] is WsState.SUCCEEDED
    # Kept with the run: a resume or a background driver goes on the same way.
    record = RunStore(state).get_run(engine.run_id)
    assert record is not None and stored_options(record).existing_branches == "fresh"


async def test_resuming_a_run_is_not_a_new_run(git_repo: GitRepo, tmp_path: Path) -> None:
    plan = _plan(tmp_path, git_repo)
    state = tmp_path / ".mission-control"
    run_id = await _first_run(plan, state)
    engine = make_engine(plan, state, run_id=run_id)  # no refusal: its own branches
    assert await engine.run() is True
    assert git_repo.git("show", "ws/P1/A:notes.txt") == "one more line"


async def test_dry_run_tells_what_a_new_run_would_do_with_existing_branches(
    git_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _plan(tmp_path, git_repo)
    state = tmp_path / ".mission-control"
    await _first_run(plan, state)
    tip = git_repo.git("rev-parse", "ws/P1/A")
    capsys.readouterr()

    assert main(["run", str(plan.path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "ws/P1/A exists with 1 commit not on origin/main: the run stops" in out
    assert "ws/P1/B exists at" in out and "re-attached" in out
    assert "from origin/main, merging" not in out
    assert "a new run stops before it starts: ws/P1/A" in out

    assert main(["run", str(plan.path), "--dry-run", "--fresh"]) == 0
    out = capsys.readouterr().out
    assert f"ws/P1/A exists: started again from origin/main (its tip {tip[:10]} kept" in out
    assert "stops" not in out

    assert main(["run", str(plan.path), "--dry-run", "--continue-branches"]) == 0
    assert "ws/P1/A exists with 1 commit not on origin/main: built on" in capsys.readouterr().out
    assert git_repo.git("rev-parse", "ws/P1/A") == tip
    assert _runs(state) == 1
