"""Finishing through the engine: checks, commit, push, pull request and conflict forecast.

Every test runs a real plan through ``Engine`` on a real repository whose
``origin`` is a bare repository in tmp_path; ``gh`` is the stand-in from
``tests/helpers/fake_gh.py`` (first on PATH), or absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mission_control.engine import events as ev
from mission_control.engine.states import WsState
from mission_control.plan.model import Plan
from mission_control.store.runs import RunStore
from tests.engine.engine_helpers import Recorder, make_engine, write_plan, ws

if TYPE_CHECKING:
    from tests.engine.conftest import GitSandbox

PR_URL = "https://github.com/example/project/pull/"


def _gh_calls(state: Path) -> list[dict[str, Any]]:
    calls = state / "calls.jsonl"
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines()]


def _pr_calls(state: Path, verb: str) -> list[dict[str, Any]]:
    return [c for c in _gh_calls(state) if c["argv"][:2] == ["pr", verb]]


def _opt(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]


def _steps(rec: Recorder, task_id: str, step: str) -> list[ev.FinishStepDone]:
    return [
        e
        for e in rec.events
        if isinstance(e, ev.FinishStepDone) and e.task_id == task_id and e.step == step
    ]


def _sh(ws_id: str, line: str, **extra: Any) -> dict[str, Any]:
    """A workstream whose tool is one shell line run in its worktree."""
    return {
        "id": ws_id,
        "name": f"workstream {ws_id}",
        "tool": "shell",
        "command": [line],
        "shell": True,
        **extra,
    }


def _log(state: Path, run_id: str, ws_id: str, attempt: int = 1) -> str:
    found = [
        p for p in (state / "runs" / run_id).rglob(f"attempt-{attempt}.log") if ws_id in p.parts
    ]
    assert len(found) == 1, found
    return found[0].read_text()


def _remote_branches(sb: GitSandbox) -> set[str]:
    assert sb.origin is not None
    out = sb.git(sb.origin, "branch", "--list", "ws/*")
    return {line.strip() for line in out.splitlines()}


async def test_commit_push_and_pull_request_then_a_rerun_edits_it(
    git_sandbox: GitSandbox, fake_gh: Path, tmp_path: Path
) -> None:
    sb = git_sandbox
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                1,  # the stand-in gh numbers PRs by reading its file: one caller at a time
                [
                    ws(
                        "A",
                        "--append",
                        "notes.txt=hello",
                        checks=[
                            {"name": "lint", "run": "echo lint-says-fine", "shell": True},
                            {"run": "test -f notes.txt"},
                        ],
                        pr={
                            "draft": True,
                            "labels": ["mc", "auto"],
                            "title": "{ws_id}: {name}",
                            "body": "Done in run {run_id}.\n\nChecked:\n{checks}",
                            "base": "release",
                        },
                    ),
                    ws("B", "--write", "src/b.py=print('b')\n", "--write", "gone.log=ignored"),
                ],
            )
        ],
    )
    state = tmp_path / "state"
    engine = make_engine(plan, state)
    rec = Recorder(engine)
    assert await engine.run() is True, rec.states
    run_id = engine.run_id

    # The commit and the branch are in origin, the branch tracks it.
    for branch in ("ws/P1/A", "ws/P1/B"):
        assert sb.origin_head(branch) == sb.git(sb.repo, "rev-parse", branch)
        assert sb.git(sb.repo, "config", f"branch.{branch}.remote") == "origin"
    assert sb.git(sb.repo, "log", "-1", "--format=%B", "ws/P1/A") == (
        f"[P1::A] workstream A\n\nmission-control run {run_id}, attempt 1, tool shell."
    )
    assert sb.origin is not None
    files_b = sb.git(sb.origin, "show", "--name-only", "--format=", "ws/P1/B").split()
    assert files_b == ["src/b.py"]  # .gitignore honoured: gone.log stays out

    # Head and diffstat recorded; the detail says "1 file", never "1 files".
    store = RunStore(state)
    rec_a = store.workstream(run_id, "P1::A")
    assert rec_a is not None
    assert rec_a.head_commit == sb.git(sb.repo, "rev-parse", "ws/P1/A")
    assert (rec_a.files_changed, rec_a.insertions, rec_a.deletions) == (1, 1, 0)
    detail_a = rec.details("P1::A")[-1]
    assert detail_a.startswith("pushed to origin: 1 file changed, +1 -0; PR " + PR_URL)

    # One `gh pr create` per branch with the plan's options.
    creates = {_opt(c["argv"], "--head")[0]: c for c in _pr_calls(fake_gh, "create")}
    assert set(creates) == {"ws/P1/A", "ws/P1/B"}
    a_call, b_call = creates["ws/P1/A"], creates["ws/P1/B"]
    assert _opt(a_call["argv"], "--base") == ["release"]
    assert _opt(a_call["argv"], "--title") == ["A: workstream A"]
    assert _opt(a_call["argv"], "--label") == ["mc", "auto"]
    assert "--draft" in a_call["argv"] and "--body-file" in a_call["argv"]
    assert Path(a_call["cwd"]).resolve() == plan.workstream("P1::A").worktree_path.resolve()
    body_a = a_call["body"]
    assert f"Done in run {run_id}." in body_a
    assert "Changes: 1 file changed, +1 -0" in body_a  # added: the template lacks it
    assert body_a.count("- `lint`: passed") == 1  # the template had this one
    assert "- `test -f notes.txt`: passed" in body_a
    assert _opt(b_call["argv"], "--base") == ["main"]
    assert _opt(b_call["argv"], "--title") == ["[P1::B] workstream B"]
    assert "--draft" not in b_call["argv"]
    assert "Changes: 1 file changed, +1 -0" in b_call["body"]
    assert "no checks configured" in b_call["body"]
    url_a = rec_a.pr_url
    assert url_a is not None and url_a.startswith(PR_URL) and url_a in detail_a

    # Checks ran in the worktree, their output under a header in the attempt's log.
    log_a = _log(state, run_id, "A")
    assert "──── check 'lint': echo lint-says-fine" in log_a
    assert log_a.index("check 'lint'") < log_a.index("lint-says-fine\n")
    assert "──── check ok: check 'test -f notes.txt' passed" in log_a
    assert f"──── pr ok: created {url_a}" in log_a

    # A rerun (a new run of the same plan, building on the branch) adds to it and edits the PR.
    again = make_engine(plan, state, existing_branches="continue")
    rec2 = Recorder(again)
    assert await again.run() is True, rec2.states
    assert len(_pr_calls(fake_gh, "create")) == 2
    edits = {c["argv"][2]: c for c in _pr_calls(fake_gh, "edit")}
    rec_b = store.workstream(run_id, "P1::B")
    assert rec_b is not None and rec_b.pr_url is not None
    assert set(edits) == {url_a, rec_b.pr_url}
    assert "1 file changed, +2 -0" in edits[url_a]["body"]
    assert f"Done in run {again.run_id}." in edits[url_a]["body"]
    assert len(json.loads((fake_gh / "prs.json").read_text())) == 2
    assert sb.origin_head("ws/P1/A") == sb.git(sb.repo, "rev-parse", "ws/P1/A")
    base = sb.git(sb.repo, "rev-parse", "main")
    assert sb.git(sb.repo, "rev-list", "--count", f"{base}..ws/P1/A") == "2"
    again_a = store.workstream(again.run_id, "P1::A")
    assert again_a is not None and again_a.pr_url == url_a


def _path_without_gh() -> str:
    dirs = os.environ["PATH"].split(os.pathsep)
    return os.pathsep.join(d for d in dirs if not os.access(os.path.join(d, "gh"), os.X_OK))


@pytest.mark.parametrize("why", ["missing", "logged out"])
async def test_without_gh_the_pr_step_is_skipped_with_the_command(
    why: str,
    git_sandbox: GitSandbox,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = git_sandbox
    gh_state: Path | None = None
    if why == "missing":
        monkeypatch.setenv("PATH", _path_without_gh())
    else:
        gh_state = request.getfixturevalue("fake_gh")
        monkeypatch.setenv("FAKE_GH_LOGGED_OUT", "1")
    plan = write_plan(tmp_path, sb.repo, [("P1", 1, [ws("A", "--write", "a.txt=a")])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.states

    assert "ws/P1/A" in _remote_branches(sb)  # pushed all the same
    [pr_step] = _steps(rec, "P1::A", "pr")
    assert pr_step.ok
    worktree = plan.workstream("P1::A").worktree_path
    assert pr_step.detail.startswith("skipped: ")
    assert f"to open it by hand: cd {worktree} && gh pr create --base main --head ws/P1/A" in (
        pr_step.detail
    )
    body_file = Path(pr_step.detail.split("--body-file ", 1)[1].split()[0])
    assert "1 file changed, +1 -0" in body_file.read_text()
    assert "PR skipped" in rec.details("P1::A")[-1]
    if why == "missing":
        assert "`gh` is not installed" in pr_step.detail
    else:
        assert gh_state is not None
        assert "gh auth login" in pr_step.detail
        assert [c["argv"][:2] for c in _gh_calls(gh_state)] == [["auth", "status"]]


async def test_a_relative_remote_url_pushes_from_the_worktree(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    sb.git(sb.repo, "remote", "set-url", "origin", "../origin.git")  # seen from the checkout
    plan = write_plan(tmp_path, sb.repo, [("P1", 1, [ws("A", "--write", "a.txt=mine")])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.details("P1::A")

    [push] = _steps(rec, "P1::A", "push")
    assert push.ok and push.detail == "origin/ws/P1/A"
    assert sb.git(sb.origin, "show", "ws/P1/A:a.txt") == "mine"


async def test_a_rejected_push_fails_with_gits_message_and_keeps_the_branch(
    git_sandbox: GitSandbox, fake_gh: Path, tmp_path: Path
) -> None:
    sb = git_sandbox
    # Someone else's commit already sits on the remote branch: a non-fast-forward.
    tree = sb.git(sb.repo, "rev-parse", "main^{tree}")
    theirs = sb.git(sb.repo, "commit-tree", tree, "-p", "main", "-m", "someone else")
    sb.git(sb.repo, "push", "-q", "origin", f"{theirs}:refs/heads/ws/P1/A")
    plan = write_plan(tmp_path, sb.repo, [("P1", 1, [ws("A", "--write", "a.txt=mine")])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False

    assert rec.states["P1::A"] is WsState.FAILED
    detail = rec.details("P1::A")[-1]
    assert "pushing ws/P1/A to origin was rejected" in detail
    assert "rejected" in detail.split("was rejected", 1)[1]  # git's own words follow
    assert sb.origin_head("ws/P1/A") == theirs
    assert sb.git(sb.repo, "show", "ws/P1/A:a.txt") == "mine"  # the local branch stays
    assert _pr_calls(fake_gh, "create") == []
    [push] = _steps(rec, "P1::A", "push")
    assert not push.ok


async def test_checks_default_and_own_a_failure_commits_but_does_not_push(
    git_sandbox: GitSandbox, fake_gh: Path, tmp_path: Path
) -> None:
    sb = git_sandbox
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                3,
                [
                    ws("A", "--write", "other.txt=no required file"),
                    ws("B", "--write", "required.txt=here"),
                    ws(
                        "C",
                        "--write",
                        "c.txt=c",
                        checks=[{"name": "slow", "run": "sleep 30", "timeout_minutes": 0.02}],
                    ),
                ],
            )
        ],
        checks=[{"run": "test -f required.txt"}, {"run": "echo second-check-ran", "shell": True}],
    )
    state = tmp_path / "state"
    engine = make_engine(plan, state)
    rec = Recorder(engine)
    started = time.monotonic()
    assert await engine.run() is False
    assert time.monotonic() - started < 20  # the slow check was stopped at its timeout

    # A: the plan's default check fails; the work is committed on the branch, not pushed.
    assert rec.states["P1::A"] is WsState.FAILED
    assert rec.details("P1::A")[-1] == (
        "check 'test -f required.txt' exited 1; work committed on ws/P1/A, not pushed"
    )
    assert sb.git(sb.repo, "show", "ws/P1/A:other.txt") == "no required file"
    log_a = _log(state, engine.run_id, "A")
    assert "──── check 'test -f required.txt': test -f required.txt" in log_a
    assert "──── check FAILED: check 'test -f required.txt' exited 1" in log_a
    assert "second-check-ran" not in log_a

    # B passes both default checks and is pushed with its PR.
    assert rec.states["P1::B"] is WsState.SUCCEEDED
    assert "second-check-ran" in _log(state, engine.run_id, "B")

    # C: its own check replaces the defaults and is stopped at its own timeout.
    assert rec.states["P1::C"] is WsState.FAILED
    assert rec.details("P1::C")[-1].startswith("check 'slow' timed out after 1.2s;")
    assert "required.txt" not in _log(state, engine.run_id, "C")

    assert _remote_branches(sb) == {"ws/P1/B"}
    assert [_opt(c["argv"], "--head") for c in _pr_calls(fake_gh, "create")] == [["ws/P1/B"]]


async def test_no_changes_succeeds_without_commit_unless_changes_are_required(
    git_sandbox: GitSandbox, fake_gh: Path, tmp_path: Path
) -> None:
    sb = git_sandbox
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                2,
                [
                    ws("N", "--lines", "2", "--write", "ignored.log=only ignored"),
                    ws("R", "--lines", "2", require_changes=True),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False

    assert rec.states["P1::N"] is WsState.SUCCEEDED
    assert rec.details("P1::N")[-1] == "succeeded (no changes)"
    assert rec.states["P1::R"] is WsState.FAILED
    assert "require_changes" in rec.details("P1::R")[-1]
    main = sb.git(sb.repo, "rev-parse", "main")
    for task_id, branch in (("P1::N", "ws/P1/N"), ("P1::R", "ws/P1/R")):
        assert sb.git(sb.repo, "rev-parse", branch) == main  # no commit
        assert [s.detail for s in _steps(rec, task_id, "commit")] == ["no changes"]
        assert _steps(rec, task_id, "push") == []
    assert _remote_branches(sb) == set()
    assert _gh_calls(fake_gh) == []


async def test_the_tools_own_commits_are_kept_and_counted(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    line = (
        "printf 'own\\n' > own.txt && git add own.txt && git commit -qm 'tool: own commit'"
        " && printf 'left\\n' > left.txt"
    )
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                1,
                [
                    _sh("T", line),
                    _sh(
                        "S",
                        "printf 'x\\n' > s.txt && git add -A && git commit -qm 'tool: only commit'",
                    ),
                ],
            )
        ],
        pr={"enabled": False},
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.states

    subjects = sb.git(sb.repo, "log", "--format=%s", "main..ws/P1/T").splitlines()
    assert subjects == ["[P1::T] workstream T", "tool: own commit"]
    assert rec.details("P1::T")[-1] == "pushed to origin: 2 files changed, +2 -0"
    # Nothing left uncommitted: the tool's commit alone is the work.
    assert sb.git(sb.repo, "log", "--format=%s", "main..ws/P1/S") == "tool: only commit"
    [commit_s] = _steps(rec, "P1::S", "commit")
    assert "the tool's own commits (1 file changed, +1 -0)" in commit_s.detail
    assert sb.origin_head("ws/P1/S") == sb.git(sb.repo, "rev-parse", "ws/P1/S")
    assert _steps(rec, "P1::S", "pr") == []  # pr: enabled: false


async def test_conflicts_are_forecast_between_branches_and_against_the_remote_base(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    edit = "sed -i 's/^line {n}$/{text}/' f.txt"
    upstream = (
        f"{edit.format(n=5, text='upstream 5')} && git commit -qam upstream"
        " && git push -q origin HEAD:main && git reset -q --hard HEAD~1"
        f" && {edit.format(n=5, text='mine 5')}"
    )
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                1,  # one at a time: each finishes before the next forecasts
                [
                    _sh("A", edit.format(n=1, text="A was here")),
                    _sh("B", edit.format(n=1, text="B was here")),
                    _sh("C", edit.format(n=10, text="C at the end")),
                    _sh("D", "echo d > d.txt"),
                    _sh("E", upstream),
                ],
            )
        ],
        pr={"enabled": False},
    )
    state = tmp_path / "state"
    main_before = sb.git(sb.repo, "rev-parse", "main")
    engine = make_engine(plan, state)
    rec = Recorder(engine)
    assert await engine.run() is True, rec.states

    conflicts = {
        task_id: dict(view.conflicts) for task_id, view in engine.snapshot().workstreams.items()
    }
    assert conflicts["P1::B"] == {"P1::A": ("f.txt",)}
    assert conflicts["P1::C"] == {}  # the same file, other lines: merges clean
    assert conflicts["P1::D"] == {}
    assert conflicts["P1::E"] == {"base:main": ("f.txt",)}
    # E conflicts with origin's main; the local main never moved.
    assert sb.git(sb.repo, "rev-parse", "main") == main_before
    stored = {w.task_id: dict(w.conflicts) for w in RunStore(state).workstreams(engine.run_id)}
    assert {t: stored[t] for t in ("P1::B", "P1::C", "P1::D", "P1::E")} == {
        t: conflicts[t] for t in ("P1::B", "P1::C", "P1::D", "P1::E")
    }
    assert "──── forecast: would conflict with P1::A: f.txt" in _log(state, engine.run_id, "B")


async def test_without_a_remote_the_forecast_uses_the_local_base_and_nothing_is_pushed(
    local_git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = local_git_sandbox
    repo = sb.repo
    line = (
        f"sed -i 's/^line 3$/user 3/' {repo}/f.txt && git -C {repo} commit -qam user"
        " && sed -i 's/^line 3$/mine 3/' f.txt"
    )
    plan = write_plan(tmp_path, repo, [("P1", 1, [_sh("X", line, pr={"enabled": True})])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.states

    assert dict(engine.snapshot().workstreams["P1::X"].conflicts) == {"base:main": ("f.txt",)}
    [push] = _steps(rec, "P1::X", "push")
    assert push.ok and "no remote 'origin'" in push.detail
    [pr] = _steps(rec, "P1::X", "pr")
    assert pr.ok and pr.detail == "skipped: the branch was not pushed, so no pull request"
    assert rec.details("P1::X")[-1] == "committed on ws/P1/X: 1 file changed, +1 -1"


async def test_killing_during_a_long_check_stops_it(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    marker = tmp_path / "check-started"
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                1,
                [
                    ws(
                        "K",
                        "--write",
                        "k.txt=k",
                        checks=[
                            {"name": "long", "run": f"touch {marker} && sleep 60", "shell": True}
                        ],
                    )
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    await rec.state("P1::K", WsState.FINISHING)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert marker.exists()
    stopped_at = time.monotonic()
    await engine.kill("P1::K")
    await rec.state("P1::K", WsState.KILLED, timeout=10)
    assert time.monotonic() - stopped_at < 5
    assert _remote_branches(sb) == set()
    await engine.cancel()
    assert await run is False


def _conflict_plan(sb: GitSandbox, tmp_path: Path, limit: int) -> Plan:
    edit = "sed -i 's/^line 1$/{text}/' f.txt"
    return write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                limit,
                [_sh("A", edit.format(text="A was here")), _sh("B", edit.format(text="B too"))],
            )
        ],
        pr={"enabled": False},
    )


@pytest.mark.parametrize("limit", [1, 2], ids=["one after the other", "side by side"])
async def test_both_sides_of_a_conflict_hear_of_it(
    limit: int, git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    # Side by side, each branch forecasts while the other may still be finishing.
    plan = _conflict_plan(git_sandbox, tmp_path, limit)
    engine = make_engine(plan, tmp_path / "state")
    assert await engine.run() is True
    views = engine.snapshot().workstreams
    assert dict(views["P1::A"].conflicts) == {"P1::B": ("f.txt",)}
    assert dict(views["P1::B"].conflicts) == {"P1::A": ("f.txt",)}


async def test_a_fresh_retry_replaces_the_pushed_branch(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    plan = write_plan(
        tmp_path,
        sb.repo,
        [("P1", 1, [ws("A", "--append", "notes.txt=hello")])],
        pr={"enabled": False},
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    await rec.state("P1::A", WsState.SUCCEEDED, WsState.FAILED)
    first = sb.origin_head("ws/P1/A")
    await engine.retry("P1::A", fresh=True)
    await rec.until(
        lambda: (
            rec.transitions("P1::A").count(WsState.SUCCEEDED) == 2
            or rec.states["P1::A"] is WsState.FAILED
        )
    )
    await engine.cancel()
    await run
    assert rec.transitions("P1::A").count(WsState.SUCCEEDED) == 2, rec.details("P1::A")
    head = sb.git(sb.repo, "rev-parse", "ws/P1/A")
    assert head != first and sb.origin_head("ws/P1/A") == head
    assert sb.git(sb.repo, "rev-list", "--count", "main..ws/P1/A") == "1"
