"""Pull requests through a stand-in ``gh`` (tests/helpers/fake_gh.py) on PATH."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mission_control.git.pull_requests import open_pull_request, render
from mission_control.git.worktrees import prepare_worktree
from mission_control.plan.model import PrOptions

if TYPE_CHECKING:
    from conftest import GitSandbox


def _calls(state: Path) -> list[dict[str, Any]]:
    log = state / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def _prs(state: Path) -> list[dict[str, Any]]:
    return list(json.loads((state / "prs.json").read_text()))


def _value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


PR = PrOptions(
    title="[{task_id}] {name}",
    body="Run {run_id} on {branch} ({phase_id}/{ws_id}): {diffstat}\n{checks}\nkeep {braces}",
    labels=["automated"],
)


def test_create_carries_base_head_title_and_body(
    local_git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = local_git_sandbox
    ws = sb.ws("A", pr=PR, name="Scan paths")
    prepared = prepare_worktree(ws, [])

    result = open_pull_request(
        ws, prepared.path, run_id="r1", diffstat="1 file changed, +2 -0", checks="- tests: ok"
    )

    assert result.status == "created"
    assert result.url == "https://github.com/example/project/pull/1"
    assert result.reason == ""
    calls = _calls(fake_gh)
    assert [c["argv"][:2] for c in calls] == [["auth", "status"], ["pr", "list"], ["pr", "create"]]
    assert calls[1]["argv"] == ["pr", "list", "--head", "ws/PH1/A", "--json", "url"]
    create = calls[2]
    argv = create["argv"]
    assert _value(argv, "--base") == "main"
    assert _value(argv, "--head") == "ws/PH1/A"
    assert _value(argv, "--title") == "[PH1::A] Scan paths"
    assert _value(argv, "--label") == "automated"
    assert "--draft" not in argv
    assert create["body"] == (
        "Run r1 on ws/PH1/A (PH1/A): 1 file changed, +2 -0\n- tests: ok\nkeep {braces}"
    )
    assert Path(create["cwd"]).resolve() == prepared.path.resolve()
    # The body file lives outside the worktree's files.
    assert not Path(_value(argv, "--body-file")).is_relative_to(prepared.path)
    assert sb.git(prepared.path, "status", "--porcelain", "--untracked-files=all") == ""


def test_draft_and_base_options(local_git_sandbox: GitSandbox, fake_gh: Path) -> None:
    sb = local_git_sandbox
    sb.git(sb.repo, "branch", "develop")
    ws = sb.ws("A", pr=PrOptions(draft=True, base="develop"))
    prepared = prepare_worktree(ws, [])
    body_path = sb.tmp / "state" / "pr-body-A.md"

    result = open_pull_request(ws, prepared.path, run_id="r9", body_path=body_path)

    assert result.status == "created"
    argv = _calls(fake_gh)[-1]["argv"]
    assert "--draft" in argv and _value(argv, "--base") == "develop"
    assert _value(argv, "--title") == "[PH1::A] Workstream A"  # the default title
    assert _value(argv, "--body-file") == str(body_path)
    body = body_path.read_text()
    assert "PH1::A" in body and "r9" in body and "no changes" in body


def test_a_rerun_updates_the_pull_request(local_git_sandbox: GitSandbox, fake_gh: Path) -> None:
    sb = local_git_sandbox
    ws = sb.ws("A", pr=PR)
    prepared = prepare_worktree(ws, [])
    first = open_pull_request(ws, prepared.path, run_id="r1", diffstat="first")

    second = open_pull_request(ws, prepared.path, run_id="r2", diffstat="second")

    assert (first.status, second.status) == ("created", "updated")
    assert second.url == first.url
    prs = _prs(fake_gh)
    assert len(prs) == 1
    assert "Run r2" in prs[0]["body"] and "second" in prs[0]["body"]
    commands = [c["argv"][:2] for c in _calls(fake_gh)]
    assert commands.count(["pr", "create"]) == 1
    assert commands[-1] == ["pr", "edit"]
    edit = _calls(fake_gh)[-1]["argv"]
    assert edit[2] == first.url and _value(edit, "--add-label") == "automated"


def test_without_gh_the_step_is_skipped_with_the_command(
    local_git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = local_git_sandbox
    ws = sb.ws("A", pr=PR)
    prepared = prepare_worktree(ws, [])
    empty = tmp_path / "empty-bin"
    empty.mkdir()

    result = open_pull_request(
        ws, prepared.path, run_id="r1", diffstat="3 files", env={"PATH": str(empty)}
    )

    assert result.status == "skipped"
    assert "`gh` is not installed" in result.reason
    cd, _, command = result.command.partition(" && ")
    assert shlex.split(cd) == ["cd", str(prepared.path)]
    argv = shlex.split(command)
    assert argv[:3] == ["gh", "pr", "create"]
    assert _value(argv, "--head") == "ws/PH1/A" and _value(argv, "--base") == "main"
    assert _value(argv, "--title") == "[PH1::A] Workstream A"
    # The body the command points at exists, rendered.
    assert Path(_value(argv, "--body-file")).read_text().startswith("Run r1 on ws/PH1/A")


def test_not_logged_in_is_skipped_not_failed(
    local_git_sandbox: GitSandbox, fake_gh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    monkeypatch.setenv("FAKE_GH_LOGGED_OUT", "1")
    ws = sb.ws("A")
    prepared = prepare_worktree(ws, [])

    result = open_pull_request(ws, prepared.path, run_id="r1")

    assert result.status == "skipped"
    assert "not logged in" in result.reason and "gh auth login" in result.reason
    assert "gh pr create" in result.command
    assert [c["argv"][:2] for c in _calls(fake_gh)] == [["auth", "status"]]


def test_a_gh_error_fails_with_its_message(
    local_git_sandbox: GitSandbox, fake_gh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    monkeypatch.setenv("FAKE_GH_FAIL", "pr create")
    ws = sb.ws("A")
    prepared = prepare_worktree(ws, [])

    result = open_pull_request(ws, prepared.path, run_id="r1")

    assert result.status == "failed" and result.url is None
    assert "Head sha can't be blank" in result.reason and "`gh pr create`" in result.reason
    assert "gh pr create" in result.command


def test_render_fills_only_known_placeholders() -> None:
    values = {"task_id": "P::W", "name": "N"}
    assert render("[{task_id}] {name} {other} {}", values) == "[P::W] N {other} {}"
