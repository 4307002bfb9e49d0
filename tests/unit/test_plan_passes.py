"""The loader's passes: a module each, defaults merged over the fields, one on disk and git."""

from __future__ import annotations

import ast
from pathlib import Path

from mission_control.plan.loader import parse_plan
from mission_control.plan.merge import REQUIRED, defaults_settings, merge_settings
from mission_control.plan.schema import RawDefaults, RawSettings, RawWorkstream

PLAN_PACKAGE = Path(__file__).resolve().parents[2] / "mission_control" / "plan"


def _imports(file: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_environment_pass_asks_git() -> None:
    askers = {
        file.name
        for file in PLAN_PACKAGE.glob("*.py")
        if any(name.startswith(("..git", "git", "subprocess")) for name in _imports(file))
    }
    assert askers == {"environment.py"}


def test_each_pass_is_a_module_of_moderate_size() -> None:
    sizes = {file.name: len(file.read_text().splitlines()) for file in PLAN_PACKAGE.glob("*.py")}
    assert {"problems.py", "shapes.py", "merge.py", "resolve.py", "environment.py"} <= set(sizes)
    assert max(sizes.values()) < 600, sizes


def test_every_setting_comes_from_defaults_without_code_of_its_own() -> None:
    values = {
        "repo": "/r",
        "base_branch": "main",
        "tool": "codex",
        "timeout_minutes": 5.0,
        "checks": ["pytest -q"],
        "env": {"A": "1"},
        "worktree_root": "/wt",
        "retries": 2,
        "base": "branch",
        "pr": {"draft": True},
        "push": False,
        "remote": "upstream",
        "require_changes": True,
        "stall_minutes": 3.0,
        "on_stall": "kill",
        "command": ["make"],
        "shell": False,
        "resources": {"cpus": 2},
        "budget": {"max_cost_usd": 2.5},
    }
    # A setting added to RawSettings without an example here fails this test: add one.
    assert set(values) == set(RawSettings.model_fields)
    defaults = RawDefaults.model_validate(values)
    own = RawWorkstream.model_validate({"id": "W", "env": {"B": "2"}, "pr": {"title": "t"}})
    merged = merge_settings(defaults_settings(defaults), own, ("phases", 0, "workstreams", 0))
    assert set(merged) == set(values)
    assert merged["retries"] == (2, ("defaults", "retries"))
    assert merged["env"] == ({"A": "1", "B": "2"}, ("phases", 0, "workstreams", 0, "env"))
    assert merged["pr"][0] == {"draft": True, "title": "t"}
    assert REQUIRED == ("repo", "base_branch", "tool", "timeout_minutes")


def test_a_workstream_value_wins_and_mappings_merge_by_key(tmp_path: Path) -> None:
    text = (
        "defaults: {repo: r, base_branch: main, tool: codex, timeout_minutes: 1,\n"
        "  retries: 3, env: {A: '1', B: '1'}, pr: {draft: true, labels: [x]},\n"
        "  resources: {cpus: 2, memory: 1GiB}}\n"
        "phases:\n"
        "  - id: P\n"
        "    max_parallel_workstreams: 1\n"
        "    workstreams:\n"
        "      - {id: W, prompt: x, retries: 0, env: {B: '2'}, pr: {title: t},\n"
        "         resources: {cpus: 1}}\n"
    )
    result = parse_plan(text, tmp_path / "plan.yaml", check_filesystem=False)
    assert result.plan is not None, [str(p) for p in result.problems]
    ws = result.plan.workstreams[0]
    assert ws.retries == 0
    assert ws.env == {"A": "1", "B": "2"}
    assert (ws.pr.draft, ws.pr.labels, ws.pr.title) == (True, ["x"], "t")
    assert (ws.resources.cpus, ws.resources.memory_bytes) == (1, None)  # replaced as a whole
    assert ws.worktree_root == tmp_path / "worktrees"
