"""A valid plan loads into concrete models: defaults merged, tools merged, paths resolved."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mission_control.plan.loader import LoadResult, load_plan, load_plan_or_raise, parse_plan
from mission_control.plan.model import BaseMode, OnStall, Plan, PromptVia
from mission_control.plan.tools import BUILTIN_TOOLS


@pytest.fixture
def repo(shared_git_repo: Any) -> Path:
    return Path(shared_git_repo.path)


def _load(tmp_path: Path, repo: Path, text: str, **kwargs: Any) -> Plan:
    plan = tmp_path / "plans" / "plan.yaml"
    plan.parent.mkdir(exist_ok=True)
    plan.write_text(text.replace("@REPO@", str(repo)))
    result = load_plan(plan, **kwargs)
    assert result.ok, [str(p) for p in result.problems]
    assert result.plan is not None
    return result.plan


def test_defaults_are_inherited_and_overridden(tmp_path: Path, repo: Path) -> None:
    plan = _load(
        tmp_path,
        repo,
        """\
defaults:
  repo: @REPO@
  base_branch: main
  tool: claude
  timeout_minutes: 45
  retries: 1
  env: {SHARED: one, LEVEL: 3, FLAG: yes}
  checks: ["python -m pytest -q"]
  pr: {draft: true, labels: bot}
phases:
  - id: PH-1
    max_parallel_workstreams: 2
    workstreams:
      - id: WS-A
        prompt: do a
      - id: WS-B
        name: Second
        prompt: do b
        tool: codex
        timeout_minutes: 0.5
        retries: 0
        env: {LEVEL: "4", OWN: x}
        checks: []
        pr: {title: "custom {task_id}"}
        base: branch
        on_stall: kill
        push: false
""",
    )
    a, b = plan.workstreams
    assert (a.name, a.tool, a.timeout_minutes, a.retries) == ("WS-A", "claude", 45.0, 1)
    assert a.env == {"SHARED": "one", "LEVEL": "3", "FLAG": "yes"}
    assert [(c.name, c.argv) for c in a.checks] == [
        ("python -m pytest -q", ["python", "-m", "pytest", "-q"])
    ]
    assert (a.pr.draft, a.pr.labels, a.pr.title) == (True, ["bot"], "[{task_id}] {name}")
    assert (a.base, a.on_stall, a.push) == (BaseMode.DEPS, OnStall.NOTIFY, True)
    assert (b.name, b.tool, b.timeout_seconds, b.retries) == ("Second", "codex", 30.0, 0)
    assert b.env == {"SHARED": "one", "LEVEL": "4", "FLAG": "yes", "OWN": "x"}
    assert b.checks == []
    assert (b.pr.draft, b.pr.labels, b.pr.title) == (True, ["bot"], "custom {task_id}")
    assert (b.base, b.on_stall, b.push) == (BaseMode.BRANCH, OnStall.KILL, False)


def test_paths_resolve_against_the_plan_folder(tmp_path: Path, repo: Path) -> None:
    prompts = tmp_path / "plans" / "prompts"
    prompts.mkdir(parents=True)
    (prompts / "a.txt").write_text("do a\n")
    link = tmp_path / "repo-link"
    link.symlink_to(repo)
    plan = _load(
        tmp_path,
        repo,
        """\
phases:
  - id: PH-1
    max_parallel_workstreams: 1
    workstreams:
      - id: WS-A
        repo: ../repo-link/.
        base_branch: main
        tool: aider
        timeout_minutes: 5
        prompt_file: prompts/a.txt
      - id: WS-B
        repo: $MC_REPO_FOR_TEST
        base_branch: main
        tool: aider
        timeout_minutes: 5
        prompt_file: ${MC_NOT_SET:-prompts}/a.txt
        worktree_root: ~/wt
""",
        environ={"MC_REPO_FOR_TEST": str(repo), "HOME": os.environ.get("HOME", "/")},
    )
    a, b = plan.workstreams
    assert a.repo == repo.resolve()  # git's top level: the real folder, not the link
    assert a.prompt_file == prompts / "a.txt"
    assert a.worktree_root == repo.resolve().parent / "worktrees"
    assert a.worktree_path == repo.resolve().parent / "worktrees" / "PH-1-WS-A"
    assert b.repo == repo.resolve()
    assert b.prompt_file == prompts / "a.txt"
    assert b.worktree_root == Path(os.path.expanduser("~/wt"))
    assert plan.path == tmp_path / "plans" / "plan.yaml"
    assert plan.name == "plan"  # the file's stem when the plan has no name


def test_repo_may_be_a_subfolder_of_the_checkout(tmp_path: Path, git_repo: Any) -> None:
    git_repo.commit_file("src/app.py", "x = 1\n")
    plan = _load(
        tmp_path,
        git_repo.path / "src",
        """\
phases:
  - id: PH-1
    max_parallel_workstreams: 1
    workstreams:
      - {id: WS-A, repo: @REPO@, base_branch: main, tool: codex, timeout_minutes: 1, prompt: x}
""",
    )
    assert plan.workstreams[0].repo == git_repo.path.resolve()


def test_dependencies_are_qualified_and_deduplicated(tmp_path: Path, repo: Path) -> None:
    plan = _load(
        tmp_path,
        repo,
        """\
defaults: {repo: @REPO@, base_branch: main, tool: codex, timeout_minutes: 1}
phases:
  - id: PH-1
    max_parallel_workstreams: 1
    workstreams:
      - {id: WS-A, prompt: x}
      - {id: WS-B, prompt: x, depends_on: WS-A}
  - id: PH-2
    max_parallel_workstreams: 1
    workstreams:
      - {id: WS-A, prompt: x, depends_on: [PH-1::WS-B, PH-1::WS-A]}
      - {id: WS-C, prompt: x, depends_on: [WS-A, PH-2::WS-A, WS-A]}
""",
    )
    deps = {ws.task_id: ws.depends_on for ws in plan.workstreams}
    assert deps == {
        "PH-1::WS-A": [],
        "PH-1::WS-B": ["PH-1::WS-A"],
        "PH-2::WS-A": ["PH-1::WS-B", "PH-1::WS-A"],
        "PH-2::WS-C": ["PH-2::WS-A"],
    }
    assert plan.workstream("PH-2::WS-C").branch == "ws/PH-2/WS-C"
    assert [p.line for p in plan.phases] == [3, 8]
    assert [ws.line for ws in plan.workstreams] == [6, 7, 11, 12]


def test_plan_tools_merge_with_the_builtin_ones(tmp_path: Path, repo: Path) -> None:
    plan = _load(
        tmp_path,
        repo,
        """\
name: Tools
grace_seconds: 3
tools:
  mine:
    argv: mine --in {prompt_file} --at {worktree}
    env: {TOKEN_LEVEL: 2}
    install_hint: pipx install mine
  codex:
    argv: [codex, exec, "{prompt}"]
    prompt_via: arg
  sh-line:
    argv: "cat | my-agent"
    shell: true
    prompt_via: stdin
defaults: {repo: @REPO@, base_branch: main, timeout_minutes: 1}
phases:
  - id: PH-1
    max_parallel_workstreams: 1
    workstreams:
      - {id: WS-A, tool: mine, prompt: x}
      - {id: WS-B, tool: sh-line, prompt: x}
""",
    )
    assert (plan.name, plan.grace_seconds) == ("Tools", 3.0)
    mine = plan.tools["mine"]
    assert mine.argv == ["mine", "--in", "{prompt_file}", "--at", "{worktree}"]
    assert (mine.prompt_via, mine.env, mine.install_hint) == (
        PromptVia.FILE,
        {"TOKEN_LEVEL": "2"},
        "pipx install mine",
    )
    assert plan.tools["codex"].argv == ["codex", "exec", "{prompt}"]
    assert plan.tools["codex"].prompt_via == PromptVia.ARG
    assert plan.tools["sh-line"].argv == ["cat | my-agent"]
    assert plan.tools["sh-line"].shell is True
    for name in set(BUILTIN_TOOLS) - {"codex"}:
        assert plan.tools[name] == BUILTIN_TOOLS[name]


def test_shell_tool_commands(tmp_path: Path, repo: Path) -> None:
    plan = _load(
        tmp_path,
        repo,
        """\
defaults: {repo: @REPO@, base_branch: main, tool: shell, timeout_minutes: 1}
phases:
  - id: PH-1
    max_parallel_workstreams: 1
    workstreams:
      - {id: WS-A, command: "python3 -c 'print(1)'"}
      - {id: WS-B, command: "make && make test", shell: true}
      - {id: WS-C, command: [ls, -la], prompt: optional}
""",
    )
    a, b, c = plan.workstreams
    assert (a.command, a.shell) == (["python3", "-c", "print(1)"], False)
    assert (b.command, b.shell) == (["make && make test"], True)
    assert (c.command, c.prompt) == (["ls", "-la"], "optional")


def test_check_mappings(tmp_path: Path, repo: Path) -> None:
    plan = _load(
        tmp_path,
        repo,
        """\
defaults: {repo: @REPO@, base_branch: main, tool: codex, timeout_minutes: 1}
phases:
  - id: PH-1
    max_parallel_workstreams: 1
    workstreams:
      - id: WS-A
        prompt: x
        checks:
          - {name: lint, run: [ruff, check, .], timeout_minutes: 0.25}
          - {run: "pytest -q && mypy .", shell: true}
""",
    )
    lint, both = plan.workstreams[0].checks
    assert (lint.name, lint.argv, lint.shell, lint.timeout_minutes) == (
        "lint",
        ["ruff", "check", "."],
        False,
        0.25,
    )
    assert (both.name, both.argv, both.shell, both.timeout_minutes) == (
        "pytest -q && mypy .",
        ["pytest -q && mypy ."],
        True,
        10.0,
    )


def test_yaml_anchors_and_merge_keys(tmp_path: Path, repo: Path) -> None:
    """Top-level ``x-`` keys are ignored, so they can hold anchors."""
    plan = _load(
        tmp_path,
        repo,
        """\
x-common: &common
  repo: @REPO@
  base_branch: main
  tool: codex
  timeout_minutes: 2
phases:
  - id: PH-1
    max_parallel_workstreams: 1
    workstreams:
      - <<: *common
        id: WS-A
        prompt: x
        timeout_minutes: 3
      - <<: *common
        id: WS-B
        prompt: y
""",
    )
    a, b = plan.workstreams
    assert (a.tool, a.timeout_minutes, b.timeout_minutes) == ("codex", 3.0, 2.0)


def test_load_plan_or_raise_and_parse_plan_agree(tmp_path: Path, repo: Path) -> None:
    text = (
        f"defaults: {{repo: {repo}, base_branch: main, tool: codex, timeout_minutes: 1}}\n"
        "phases: [{id: P, max_parallel_workstreams: 1, workstreams: [{id: W, prompt: x}]}]\n"
    )
    file = tmp_path / "p.yaml"
    file.write_text(text)
    from_file = load_plan_or_raise(file)
    from_text: LoadResult = parse_plan(text, file)
    assert from_text.plan == from_file


def test_check_filesystem_false_skips_disk_and_git(tmp_path: Path) -> None:
    text = (
        "defaults: {repo: ../nowhere, base_branch: nope, tool: codex, timeout_minutes: 1}\n"
        "phases: [{id: P, max_parallel_workstreams: 1,"
        " workstreams: [{id: W, prompt_file: missing.txt}]}]\n"
    )
    result = parse_plan(text, tmp_path / "plan.yaml", check_filesystem=False)
    assert result.ok, [str(p) for p in result.problems]
    assert result.plan is not None
    ws = result.plan.workstreams[0]
    assert ws.repo == tmp_path.parent / "nowhere"
    assert ws.prompt_file == tmp_path / "missing.txt"
    assert parse_plan(text, tmp_path / "plan.yaml").problems  # with checks it fails


def test_bare_repository_is_accepted(tmp_path: Path, shared_git_repo: Any) -> None:
    plan = _load(
        tmp_path,
        Path(shared_git_repo.origin),
        """\
phases:
  - id: PH-1
    max_parallel_workstreams: 1
    workstreams:
      - {id: WS-A, repo: @REPO@, base_branch: main, tool: codex, timeout_minutes: 1, prompt: x,
         push: false}
""",
    )
    assert plan.workstreams[0].repo == Path(shared_git_repo.origin).resolve()
