"""Every plan mistake is reported with its line and a message that says what and how to fix.

Each test writes a small plan to a file, loads it against a real repository
and asserts the problem's line and wording. ``HEAD`` is 9 lines long, so the
first workstream of a body starts on line 10.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mission_control.errors import PlanError, PlanProblem
from mission_control.plan.loader import LoadResult, load_plan, load_plan_or_raise

HEAD = """\
defaults:
  repo: @REPO@
  base_branch: main
  tool: claude
  timeout_minutes: 5
phases:
  - id: PH-1
    max_parallel_workstreams: 2
    workstreams:
"""


@pytest.fixture
def repo(shared_git_repo: Any) -> Path:
    return Path(shared_git_repo.path)


@pytest.fixture
def load(tmp_path: Path, repo: Path) -> Any:
    """Write the text (``@REPO@`` = the test repository) to plan.yaml and load it."""

    def _load(text: str, **kwargs: Any) -> LoadResult:
        plan = tmp_path / "plan.yaml"
        plan.write_text(text.replace("@REPO@", str(repo)))
        return load_plan(plan, **kwargs)

    return _load


def at(result: LoadResult, line: int) -> str:
    """Every problem on ``line``, as printed; fails when there is none."""
    assert result.plan is None
    found = [str(p) for p in result.problems if p.line == line]
    assert found, f"no problem on line {line}: {[str(p) for p in result.problems]}"
    return "\n".join(found)


def only(result: LoadResult) -> PlanProblem:
    assert result.plan is None
    assert len(result.problems) == 1, [str(p) for p in result.problems]
    return result.problems[0]


# ---------------------------------------------------------------- YAML itself


def test_windows_path_in_double_quotes_names_the_escape_and_the_fix(load: Any) -> None:
    text = HEAD + '      - id: WS-A\n        prompt: x\n        repo: "C:\\Repos\\pipeline-main"\n'
    problem = only(load(text))
    assert (problem.line, problem.key_path) == (12, "repo")
    assert '"\\R" is not a YAML escape' in problem.message
    assert "single quotes ('C:\\Repos\\pipeline-main')" in problem.hint
    assert 'forward slashes ("C:/Repos/pipeline-main")' in problem.hint
    assert str(problem).startswith("plan.yaml:12:")


def test_yaml_syntax_error_has_its_line(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: [x, y\n        tool: claude\n"
    problem = only(load(text))
    assert problem.line in (12, 13)  # libyaml and PyYAML stop at slightly different places
    assert "invalid YAML" in problem.message
    assert problem.hint


def test_tab_indentation_is_named(load: Any) -> None:
    text = "phases:\n\t- id: PH-1\n"
    problem = only(load(text))
    assert problem.line == 2
    assert "tab" in problem.message and "spaces" in problem.hint


def test_unquoted_colon_in_a_value(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        name: Fix: the parser\n        prompt: x\n"
    problem = only(load(text))
    assert problem.line == 11
    assert "':'" in problem.message and "quotes" in problem.hint


def test_duplicate_yaml_key(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        tool: claude\n        tool: codex\n"
    assert "duplicate key 'tool' (first at line 12)" in at(load(text), 13)


def test_second_document_is_rejected(load: Any) -> None:
    problem = only(load("phases: []\n---\nphases: []\n"))
    assert problem.line == 2
    assert "second YAML document" in problem.message


def test_recursive_alias_is_a_problem_not_a_crash(load: Any) -> None:
    result = load("a: &x [*x]\nphases: []\n")
    assert "refers to the value that contains it" in at(result, 1)


# ---------------------------------------------------------------- shape of the file


def test_empty_file(load: Any) -> None:
    problem = only(load("# nothing here\n"))
    assert (problem.line, problem.message) == (1, "the plan is empty")


def test_file_that_is_not_a_mapping(load: Any) -> None:
    problem = only(load("- id: PH-1\n- id: PH-2\n"))
    assert problem.line == 1
    assert "must be a mapping" in problem.message and "not a list" in problem.message


def test_plan_without_phases(load: Any) -> None:
    assert "the plan has no phases" in at(load("version: 1\nphases: []\n"), 2)
    problem = only(load("version: 1\n"))
    assert problem.message == "missing required key 'phases'"


def test_empty_phase(load: Any) -> None:
    text = "phases:\n  - id: PH-1\n    max_parallel_workstreams: 1\n    workstreams: []\n"
    assert "the phase has no workstreams" in at(load(text), 4)


def test_phase_that_is_not_a_mapping(load: Any) -> None:
    assert "a phase must be a mapping" in at(load("phases:\n  - PH-1\n"), 2)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    missing = load_plan(tmp_path / "nope.yaml")
    assert "cannot read the plan file" in only(missing).message
    latin = tmp_path / "plan.yaml"
    latin.write_bytes(b"phases:\n  - id: PH-\xe9\n")
    problem = only(load_plan(latin))
    assert (problem.line, problem.message) == (2, "the file is not UTF-8 text")


# ---------------------------------------------------------------- keys and types


def test_unknown_key_suggests_the_right_one(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        timout_minutes: 5\n"
    problem = only(load(text))
    assert problem.line == 12
    assert problem.key_path == "phases[PH-1].workstreams[WS-A].timout_minutes"
    assert problem.message == "unknown key 'timout_minutes'"
    assert problem.hint == "did you mean 'timeout_minutes'?"


def test_unknown_keys_at_every_level(load: Any) -> None:
    text = (
        "versoin: 1\n"  # 1
        "defaults:\n"
        "  repo: @REPO@\n"
        "  base_branch: main\n"
        "  tool: claude\n"  # 5
        "  timeout_minutes: 5\n"
        "  prompt_file: p.txt\n"  # 7: workstream-only key under defaults
        "phases:\n"
        "  - id: PH-1\n"
        "    max_parallel_workstreams: 2\n"  # 10
        "    tool: claude\n"  # 11: a workstream setting on a phase
        "    workstreams:\n"
        "      - id: WS-A\n"
        "        prompt: x\n"
        "        checks: [{run: make, nmae: build}]\n"  # 15
        "        pr: {titel: x}\n"  # 16
    )
    result = load(text)
    assert "unknown key 'versoin' — did you mean 'version'?" in at(result, 1)
    assert "'prompt_file' is set on each workstream, not under `defaults:`" in at(result, 7)
    assert "'tool' is a workstream setting" in at(result, 11)
    assert "checks[0].nmae: unknown key 'nmae' — did you mean 'name'?" in at(result, 15)
    assert "pr.titel: unknown key 'titel' — did you mean 'title'?" in at(result, 16)


def test_unknown_key_without_a_close_match_lists_the_known_ones(load: Any) -> None:
    text = "phases: []\ncolour: blue\n"
    known = (
        "known keys: budget, defaults, grace_seconds, name, notify, phases, port_range,"
        " pricing, tools, version"
    )
    assert known in at(load(text), 2)


def test_wrong_types_name_the_value_and_the_fix(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"  # 10
        "        prompt: x\n"
        "        timeout_minutes: soon\n"  # 12
        "        retries: 1.5\n"  # 13
        "        push: maybe\n"  # 14
        "        name: 2024\n"  # 15
        "        depends_on: {a: 1}\n"  # 16
        "        on_stall: explode\n"  # 17
    )
    result = load(text)
    assert "timeout_minutes: must be a number, got soon" in at(result, 12)
    assert "retries: must be a whole number, got 1.5" in at(result, 13)
    assert "push: must be true or false, got maybe" in at(result, 14)
    assert "name: must be text, got 2024 — put it in quotes: '2024'" in at(result, 15)
    assert "depends_on: must be a list, got a mapping" in at(result, 16)
    assert "on_stall: must be 'notify', 'kill' or 'retry', got explode" in at(result, 17)


def test_a_bad_key_does_not_hide_other_problems_of_the_same_workstream(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"
        "        timout: 5\n"  # 11
        "        prompt_file: missing.txt\n"  # 12
        "        depends_on: [WS-Z]\n"  # 13
    )
    result = load(text)
    assert "unknown key 'timout'" in at(result, 11)
    assert "prompt file" in at(result, 12) and "does not exist" in at(result, 12)
    assert "unknown dependency 'WS-Z'" in at(result, 13)


def test_empty_value_is_not_taken_for_a_missing_one(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        timeout_minutes:\n"
    problem = only(load(text))
    assert (problem.line, problem.message) == (12, "has no value")


def test_env_values_are_never_printed(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        env: {API_KEY: [sk-secret-123]}\n"
    problem = only(load(text))
    assert problem.line == 12
    assert problem.key_path.endswith("env.API_KEY")
    assert "sk-secret" not in str(problem)


def test_version_must_be_1(load: Any) -> None:
    result = load("version: 2\nphases: []\n")
    assert "version: must be 1, got 2 — this mission-control reads plan format version 1" in at(
        result, 1
    )


# ---------------------------------------------------------------- required keys


def test_missing_required_keys_of_phase_and_workstream(load: Any) -> None:
    text = (
        "phases:\n"
        "  - name: No id\n"  # 2
        "    workstreams:\n"
        "      - name: no id either\n"  # 4
        "        prompt: x\n"
    )
    result = load(text)
    phase = at(result, 2)
    assert "missing required key 'id'" in phase
    assert "missing required key 'max_parallel_workstreams'" in phase
    assert "missing required key 'id'" in at(result, 4)


def test_missing_repo_says_where_to_set_it(load: Any) -> None:
    text = (
        "phases:\n"
        "  - id: PH-1\n"
        "    max_parallel_workstreams: 1\n"
        "    workstreams:\n"
        "      - id: WS-A\n"  # 5
        "        prompt: x\n"
        "        base_branch: main\n"
        "        tool: claude\n"
        "        timeout_minutes: 5\n"
    )
    problem = only(load(text))
    assert problem.line == 5
    assert problem.message == "missing required key 'repo'"
    assert problem.hint == "set `repo:` on the workstream or under `defaults:`"


def test_every_missing_setting_is_reported(load: Any) -> None:
    text = "phases:\n  - id: PH-1\n    max_parallel_workstreams: 1\n    workstreams:\n"
    text += "      - id: WS-A\n        prompt: x\n"
    found = at(load(text), 5)
    for key in ("repo", "base_branch", "tool", "timeout_minutes"):
        assert f"missing required key '{key}'" in found


# ---------------------------------------------------------------- ids


def test_duplicate_phase_and_workstream_ids(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"  # 10
        "        prompt: x\n"
        "      - id: WS-A\n"  # 12
        "        prompt: y\n"
        "  - id: PH-1\n"  # 14
        "    max_parallel_workstreams: 1\n"
        "    workstreams:\n"
        "      - id: WS-B\n"
        "        prompt: x\n"
    )
    result = load(text)
    assert "duplicate workstream id 'WS-A' in phase PH-1 (first at line 10)" in at(result, 12)
    assert "duplicate phase id 'PH-1' (first at line 7)" in at(result, 14)


def test_ids_differing_only_in_case_would_collide_on_windows_and_macos(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n      - id: ws-a\n        prompt: y\n"
    found = at(load(text), 12)
    assert "'ws-a' differs from 'WS-A' (line 10) only in case" in found


@pytest.mark.parametrize(
    ("ident", "reason"),
    [
        ("WS A", "contains a space"),
        ("WS/A", "contains '/'"),
        ("WS:A", "contains ':'"),
        ("WS..A", "contains '..'"),
        ("WS-A.lock", "ends with '.lock'"),
        ("WS-A.", "ends with '.'"),
        (".WS", "starts with '.'"),
        ("-WS", "starts with '-'"),
        ("WS@{1}", "contains '@{'"),
        ("WS|A", "contains '|'"),
        ("aux", "reserved device name on Windows"),
        ("COM1.txt", "reserved device name on Windows"),
    ],
)
def test_ids_unusable_as_branch_or_folder_names(load: Any, ident: str, reason: str) -> None:
    quoted = "'" + ident.replace("'", "''") + "'"
    text = HEAD + f"      - id: {quoted}\n        prompt: x\n"
    problem = only(load(text))
    assert problem.line == 10
    assert "cannot be used in a branch or folder name" in problem.message
    assert reason in problem.message
    assert "e.g. '" in problem.hint


def test_two_ids_that_would_share_a_worktree_folder(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"
        "        prompt: x\n"
        "  - id: PH-1-WS\n"
        "    max_parallel_workstreams: 1\n"
        "    workstreams:\n"
        "      - id: A\n"  # 15
        "        prompt: x\n"
    )
    assert "would share the worktree folder PH-1-WS-A" in at(load(text), 15)


# ---------------------------------------------------------------- dependencies


def test_unknown_dependency_suggests_a_close_id(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-07A\n"
        "        prompt: x\n"
        "      - id: WS-07B\n"
        "        prompt: x\n"
        "        depends_on: [WS-07Z, WS-07a]\n"  # 14
    )
    found = at(load(text), 14)
    assert "unknown dependency 'WS-07Z' — did you mean 'WS-07A'?" in found
    assert "unknown dependency 'WS-07a' — did you mean 'WS-07A'?" in found


def test_dependency_on_an_earlier_phase_needs_its_phase_id(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"
        "        prompt: x\n"
        "  - id: PH-2\n"
        "    max_parallel_workstreams: 1\n"
        "    workstreams:\n"
        "      - id: WS-B\n"
        "        prompt: x\n"
        "        depends_on: [WS-A, PH-1::WS-Q]\n"  # 17
    )
    found = at(load(text), 17)
    assert "unknown dependency 'WS-A' in phase PH-2 — it is in phase PH-1: write 'PH-1::WS-A'" in (
        found
    )
    assert "unknown dependency 'PH-1::WS-Q' — did you mean 'PH-1::WS-A'?" in found


def test_self_dependency(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        depends_on: [WS-A]\n"
    problem = only(load(text))
    assert problem.line == 12
    assert problem.message == "'WS-A' depends on itself"


def test_cycle_is_printed(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"
        "        prompt: x\n"
        "        depends_on: [WS-B]\n"  # 12
        "      - id: WS-B\n"
        "        prompt: x\n"
        "        depends_on: [WS-A]\n"
        "      - id: WS-C\n"
        "        prompt: x\n"
        "        depends_on: [WS-A]\n"
    )
    problem = only(load(text))
    assert problem.line == 12
    assert problem.message == "dependency cycle: WS-A -> WS-B -> WS-A"


def test_longer_cycle_through_qualified_ids(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"
        "        prompt: x\n"
        "        depends_on: [PH-1::WS-C]\n"  # 12
        "      - id: WS-B\n"
        "        prompt: x\n"
        "        depends_on: WS-A\n"
        "      - id: WS-C\n"
        "        prompt: x\n"
        "        depends_on: [WS-B]\n"
    )
    assert "dependency cycle: WS-A -> WS-C -> WS-B -> WS-A" in at(load(text), 12)


def test_dependency_on_a_later_phase(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"
        "        prompt: x\n"
        "        depends_on: [PH-2::WS-B, WS-B]\n"  # 12
        "  - id: PH-2\n"
        "    max_parallel_workstreams: 1\n"
        "    workstreams:\n"
        "      - id: WS-B\n"
        "        prompt: x\n"
    )
    found = at(load(text), 12)
    assert found.count("which is in a later phase") == 2
    assert "phases run in order" in found


def test_malformed_dependency(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        depends_on: ['::WS-A']\n"
    assert "'::WS-A' is not a workstream id" in at(load(text), 12)


# ---------------------------------------------------------------- tools, prompts, commands


def test_unknown_tool_lists_the_known_ones(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        tool: aidr\n"
    problem = only(load(text))
    assert problem.line == 12
    assert problem.message == "unknown tool 'aidr'"
    assert problem.hint.startswith("did you mean 'aider'? known tools: aider, claude, codex")
    assert "define it under `tools:`" in problem.hint


def test_plan_tools_are_checked(load: Any) -> None:
    text = (
        "tools:\n"
        "  mine:\n"
        "    argv: [mine, '{promt_file}']\n"  # 3
        "  other:\n"
        "    argv: [other, --task, x]\n"  # 5: prompt_via file without {prompt_file}
        "  third:\n"
        "    argv: 'third \"unclosed'\n"  # 7
        "  fourth:\n"
        "    prompt_via: stdin\n"  # 9: no argv (the mapping starts here)
        "phases: []\n"
    )
    result = load(text)
    assert "unknown placeholder {promt_file} — did you mean {prompt_file}?" in at(result, 3)
    assert "prompt_via is file but argv never uses {prompt_file}" in at(result, 5)
    assert "cannot split" in at(result, 7)
    assert "missing required key 'argv'" in at(result, 9)
    assert "argv never uses" not in at(result, 3)  # the misspelt placeholder is the problem


def test_prompt_and_prompt_file_are_exclusive(load: Any, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("do it\n")
    text = HEAD + "      - id: WS-A\n        prompt: x\n        prompt_file: p.txt\n"
    problem = only(load(text))
    assert problem.line == 12
    assert problem.message == "both `prompt` and `prompt_file` are set"


def test_a_prompt_is_required_except_for_shell(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        name: no prompt\n"
    problem = only(load(text))
    assert (problem.line, problem.message) == (10, "the workstream has no prompt")
    assert "prompt_file:" in problem.hint and "prompt:" in problem.hint


def test_prompt_file_missing(load: Any, tmp_path: Path) -> None:
    text = HEAD + "      - id: WS-A\n        prompt_file: prompts/nope.txt\n"
    problem = only(load(text))
    assert problem.line == 11
    assert problem.message == f"prompt file '{tmp_path / 'prompts' / 'nope.txt'}' does not exist"
    assert f"relative paths start at the plan's folder ({tmp_path})" in problem.hint


def test_shell_tool_needs_a_command_and_others_reject_one(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"  # 10
        "        tool: shell\n"
        "      - id: WS-B\n"
        "        prompt: x\n"
        "        command: [make]\n"  # 14
        "      - id: WS-C\n"
        "        tool: shell\n"
        "        command: [make, test]\n"  # 17
        "        shell: true\n"
        "      - id: WS-D\n"
        "        tool: shell\n"
        "        command: make && make test\n"  # 21
    )
    result = load(text)
    assert "missing required key 'command' (the shell tool runs it)" in at(result, 10)
    assert "`command` is only used by a tool that runs a command" in at(result, 14)
    assert "with shell: true, command must be one command line" in at(result, 17)
    assert "uses shell syntax (&&) but runs without a shell" in at(result, 21)


def test_check_with_shell_syntax_or_bad_quotes(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"
        "        prompt: x\n"
        "        checks:\n"
        "          - pytest -q | tee log\n"  # 13
        '          - {run: "echo \'x"}\n'  # 14
        "          - {name: no run}\n"  # 15
    )
    result = load(text)
    assert "uses shell syntax (|)" in at(result, 13)
    assert "cannot split" in at(result, 14)
    assert "missing required key 'run'" in at(result, 15)


# ---------------------------------------------------------------- numbers


def test_max_parallel_below_one(load: Any) -> None:
    text = HEAD.replace("max_parallel_workstreams: 2", "max_parallel_workstreams: 0")
    text += "      - id: WS-A\n        prompt: x\n"
    problem = only(load(text))
    assert problem.line == 8
    assert problem.message == "must be at least 1, got 0"
    assert "one at a time" in problem.hint


@pytest.mark.parametrize("value", ["0", "-5", ".inf", "1e9"])
def test_timeout_must_be_positive_and_sane(load: Any, value: str) -> None:
    text = HEAD + f"      - id: WS-A\n        prompt: x\n        timeout_minutes: {value}\n"
    problem = only(load(text))
    assert problem.line == 12
    assert problem.message.startswith("must be")
    assert "0.5 is 30 s" in problem.hint


def test_fractional_timeout_is_valid(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        timeout_minutes: 0.5\n"
    result = load(text)
    assert result.ok, [str(p) for p in result.problems]
    assert result.plan.workstreams[0].timeout_seconds == 30.0


# ---------------------------------------------------------------- repository and paths


def test_repo_missing(load: Any, tmp_path: Path) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        repo: ../no-such-repo\n"
    problem = only(load(text))
    assert problem.line == 12
    expected = os.path.normpath(tmp_path / ".." / "no-such-repo")
    assert problem.message == f"repo '{expected}' does not exist"
    assert "relative paths start at the plan's folder" in problem.hint


def test_repo_that_is_not_a_git_repository(load: Any, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    text = HEAD + f"      - id: WS-A\n        prompt: x\n        repo: {plain}\n"
    problem = only(load(text))
    assert problem.line == 12
    assert problem.message == f"repo '{plain}' is not a git repository"
    assert "git init" in problem.hint


def test_backslash_path_hint_on_posix(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        repo: 'C:\\Repos\\x'\n"
    problem = only(load(text))
    if os.sep == "/":
        assert "a backslash is not a folder separator here" in problem.hint


def test_base_branch_missing_suggests_existing_branches(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        base_branch: mian\n"
    problem = only(load(text))
    assert problem.line == 12
    assert problem.message.startswith("base branch 'mian' is not in ")
    assert "neither a local branch nor origin/mian" in problem.message
    assert problem.hint.startswith("did you mean 'main'?")


def test_base_branch_missing_reported_once_when_it_comes_from_defaults(load: Any) -> None:
    text = HEAD.replace("base_branch: main", "base_branch: develop")
    text += "      - id: WS-A\n        prompt: x\n      - id: WS-B\n        prompt: y\n"
    problem = only(load(text))
    assert (problem.line, problem.key_path) == (3, "defaults.base_branch")


def test_remote_branch_counts_as_existing(load: Any, git_repo: Any) -> None:
    git_repo.git("push", "-q", "origin", "main:release")
    git_repo.git("fetch", "-q", "origin")
    text = HEAD.replace("@REPO@", str(git_repo.path)).replace(
        "base_branch: main", "base_branch: release"
    )
    text += "      - id: WS-A\n        prompt: x\n"
    result = load(text)
    assert result.ok, [str(p) for p in result.problems]


def test_push_needs_the_remote_the_plan_names(load: Any, git_repo: Any) -> None:
    git_repo.git("remote", "remove", "origin")
    text = HEAD.replace("@REPO@", str(git_repo.path))
    text += (
        "      - id: WS-A\n"  # 10: pushes by default; skipped without a remote, not an error
        "        prompt: x\n"
        "      - id: WS-B\n"
        "        prompt: x\n"
        "        push: true\n"  # 14: asked for by name
        "      - id: WS-C\n"
        "        prompt: x\n"
        "        remote: upstream\n"  # 17
    )
    result = load(text)
    assert [p.line for p in result.problems] == [14, 17]
    assert "remote 'origin' is not configured" in at(result, 14)
    assert "push: false" in at(result, 14)
    assert "remote 'upstream' is not configured" in at(result, 17)


def test_unset_environment_variable_is_named(load: Any) -> None:
    text = HEAD.replace("@REPO@", "${MC_TEST_UNSET_REPO}")
    text += "      - id: WS-A\n        prompt: x\n"
    problem = only(load(text, environ={}))
    assert problem.line == 2
    assert problem.message == "environment variable MC_TEST_UNSET_REPO is not set"
    assert "${MC_TEST_UNSET_REPO:-...}" in problem.hint


# ---------------------------------------------------------------- all at once


def test_every_problem_is_reported_at_once_sorted_by_line(load: Any) -> None:
    text = HEAD + (
        "      - id: WS-A\n"
        "        prompt: x\n"
        "        timout_minutes: 5\n"  # 12
        "        depends_on: [WS-Q]\n"  # 13
        "      - id: WS-B\n"
        "        tool: aidr\n"  # 15
        "        prompt: x\n"
        "      - id: 'WS B'\n"  # 17
        "        prompt: x\n"
    )
    result = load(text)
    assert [p.line for p in result.problems] == [12, 13, 15, 17]
    with pytest.raises(PlanError) as caught:
        load_plan_or_raise(Path(result.problems[0].path))
    assert caught.value.problems == result.problems
    assert str(caught.value).count("\n") == 3


# ---------------------------------------------------------------- agents, budgets


def test_an_unknown_events_adapter_names_the_known_ones(load: Any) -> None:
    text = "tools:\n  mine:\n    argv: [mine]\n    prompt_via: stdin\n    events: claude-json\n"
    text += HEAD.replace("tool: claude", "tool: mine") + "      - {id: A, prompt: p}\n"
    problem = at(load(text), 5)
    assert "unknown events adapter 'claude-json'" in problem
    assert "known: claude-stream-json, codex-json" in problem


def test_continue_argv_may_name_the_session_and_nothing_unknown(load: Any) -> None:
    tool = (
        "tools:\n  mine:\n    argv: [mine]\n    prompt_via: stdin\n"
        "    continue_argv: [mine, --resume, '{session_id}', '{sesion}']\n"
    )
    text = tool + HEAD.replace("tool: claude", "tool: mine") + "      - {id: A, prompt: p}\n"
    problem = at(load(text), 5)
    assert "unknown placeholder {sesion}" in problem and "did you mean {session_id}?" in problem
    assert "{session_id}" not in problem.split("—")[0]


def test_a_budget_is_checked_where_it_is_written(load: Any) -> None:
    text = (
        HEAD
        + "      - id: A\n        prompt: p\n        budget: {max_cost_usd: -1, max_tokns: 5}\n"
    )
    result = load(text)
    assert "budget.max_cost_usd" in at(result, 12) and "budget.max_tokns" in at(result, 12)
    assert "did you mean 'max_tokens'?" in at(result, 12)


def test_a_budget_and_prices_load(load: Any) -> None:
    text = (
        "budget: {max_cost_usd: 10}\npricing:\n  gpt-5: {input: 1.25, output: 10}\n"
        + HEAD.replace(
            "  timeout_minutes: 5\n", "  timeout_minutes: 5\n  budget: {max_tokens: 1000}\n"
        )
        + "      - {id: A, prompt: p}\n      - {id: B, prompt: p, budget: {max_cost_usd: 0.5}}\n"
    )
    plan = load(text).plan
    assert plan is not None
    assert plan.budget.max_cost_usd == 10 and plan.pricing["gpt-5"].output == 10
    a, b = plan.workstreams
    assert (a.budget.max_tokens, a.budget.max_cost_usd) == (1000, None)
    assert (b.budget.max_tokens, b.budget.max_cost_usd) == (None, 0.5)  # replaced as a whole


# ---------------------------------------------------------------- landing


def test_base_landed_in_the_first_phase_is_named_with_its_line(load: Any) -> None:
    text = HEAD + "      - id: WS-A\n        prompt: x\n        base: landed\n"
    problem = only(load(text))
    assert (problem.line, problem.key_path) == (12, "phases[PH-1].workstreams[WS-A].base")
    assert "this is the first phase" in problem.message
    assert "use `base: deps` here" in problem.hint


def test_land_takes_auto_or_manual(load: Any) -> None:
    text = HEAD.replace("    workstreams:", "    land: always\n    workstreams:")
    problem = only(load(text + "      - id: WS-A\n        prompt: x\n"))
    assert problem.line == 9 and "land" in problem.key_path
    assert "`auto`" in problem.hint


def test_a_later_phase_starts_from_the_landing_of_the_one_before(load: Any) -> None:
    text = HEAD.replace("    workstreams:", "    land: auto\n    workstreams:")
    text += "      - id: WS-A\n        prompt: x\n"
    text += "  - id: PH-2\n    max_parallel_workstreams: 1\n    workstreams:\n"
    text += "      - id: WS-B\n        prompt: y\n        base: landed\n"
    plan = load(text).plan
    assert plan is not None
    assert plan.phases[0].land_auto and not plan.phases[1].land_auto
    assert plan.workstream("PH-2::WS-B").landed_from == "mc/land/PH-1"
    assert plan.workstream("PH-1::WS-A").landed_from is None
