"""``from:``: a workstream starts from a pull request or a remote branch and updates it.

Real repositories with a bare origin; pull requests through the stand-in ``gh``
(tests/helpers/fake_gh.py) first on PATH.
"""

from __future__ import annotations

import json
from pathlib import Path

from mission_control.engine.states import WsState
from tests.conftest import GitRepo
from tests.engine.engine_helpers import Recorder, make_engine, write_plan

URL = "https://github.com/example/project/pull/1"


def _feature(git_repo: GitRepo, branch: str) -> str:
    """Push ``branch`` to origin with one commit of its own; the checkout stays on main."""
    git_repo.git("checkout", "-q", "-b", branch)
    sha = git_repo.commit_file("feature.txt", "their work\n")
    git_repo.git("push", "-q", "origin", branch)
    git_repo.git("checkout", "-q", "main")
    git_repo.git("branch", "-q", "-D", branch)
    return sha


def _open_pr(state: Path, head: str) -> None:
    state.mkdir(parents=True, exist_ok=True)
    pr = {
        "url": URL,
        "head": head,
        "base": "main",
        "title": "Their title",
        "body": "their body",
        "draft": False,
        "labels": [],
        "state": "OPEN",
    }
    (state / "prs.json").write_text(json.dumps([pr]))


def _agent(ws_id: str, start: str) -> dict[str, object]:
    line = "test -f feature.txt && echo ours > ours.txt"
    return {"id": ws_id, "tool": "shell", "command": [line], "shell": True, "from": start}


def _origin_files(git_repo: GitRepo, branch: str) -> set[str]:
    return set(git_repo.git("ls-tree", "-r", "--name-only", branch, cwd=git_repo.origin).split())


def _origin_branches(git_repo: GitRepo) -> set[str]:
    out = git_repo.git(
        "for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=git_repo.origin
    )
    return set(out.split())


async def test_from_a_remote_branch_starts_there_and_updates_its_pull_request(
    git_repo: GitRepo, tmp_path: Path, fake_gh: Path
) -> None:
    theirs = _feature(git_repo, "feature-x")
    _open_pr(fake_gh, "feature-x")
    plan = write_plan(tmp_path, git_repo.path, [("P1", 1, [_agent("A", "origin/feature-x")])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True
    assert rec.states["P1::A"] is WsState.SUCCEEDED
    # The work went onto feature-x, on top of its own commit; no branch of ours on origin.
    assert _origin_files(git_repo, "feature-x") >= {"feature.txt", "ours.txt"}
    parent = git_repo.git("rev-parse", "feature-x~1", cwd=git_repo.origin)
    assert parent == theirs
    assert _origin_branches(git_repo) == {"main", "feature-x"}
    # Its pull request was updated by the push: no new one, its title and body kept.
    prs = json.loads((fake_gh / "prs.json").read_text())
    assert [(p["url"], p["title"], p["body"]) for p in prs] == [(URL, "Their title", "their body")]
    calls = [json.loads(line)["argv"][:2] for line in (fake_gh / "calls.jsonl").open()]
    assert ["pr", "create"] not in calls and ["pr", "edit"] not in calls
    assert f"updated {URL}" in rec.details("P1::A")[-1] or any(
        URL in d for d in rec.details("P1::A")
    )
    # Only the agent's change counts as the work.
    assert engine.snapshot().workstreams["P1::A"].files_changed == 1


async def test_from_a_pull_request_through_gh(
    git_repo: GitRepo, tmp_path: Path, fake_gh: Path
) -> None:
    _feature(git_repo, "feature-y")
    _open_pr(fake_gh, "feature-y")
    plan = write_plan(tmp_path, git_repo.path, [("P1", 1, [_agent("A", "pr:1")])])
    engine = make_engine(plan, tmp_path / "state")
    assert await engine.run() is True
    assert _origin_files(git_repo, "feature-y") >= {"feature.txt", "ours.txt"}
    calls = [json.loads(line)["argv"] for line in (fake_gh / "calls.jsonl").open()]
    assert calls[0][:3] == ["pr", "view", "1"]
    assert len(json.loads((fake_gh / "prs.json").read_text())) == 1


async def test_from_a_missing_branch_or_pull_request_fails_before_the_tool(
    git_repo: GitRepo, tmp_path: Path, fake_gh: Path
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 2, [_agent("A", "origin/nope"), _agent("B", "pr:7")])],
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False
    assert rec.details("P1::A")[-1] == (
        f"{git_repo.path}: remote 'origin' has no branch nope (from: origin/nope of P1::A)"
        " — push it, or fix `from:`"
    )
    assert rec.details("P1::B")[-1].startswith(
        "P1::B: `gh pr view 7` failed: GraphQL: Could not resolve to a PullRequest"
    )
