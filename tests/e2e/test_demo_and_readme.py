"""The newcomer's path: the README's commands exist, its examples validate, the demo runs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mission_control.cli import build_parser, main
from mission_control.plan.loader import load_plan, parse_plan
from mission_control.store.runs import RunStore
from tests.conftest import GitRepo

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_first_two_commands_are_the_demo_and_the_tests() -> None:
    block = re.search(r"```\n(.*?)```", README, re.S)
    assert block is not None
    first, second = block.group(1).strip().splitlines()[:2]
    assert first == "uv run mission-control demo"
    assert second == "uv run pytest"
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "demo" in subcommands
    assert (ROOT / "tests").is_dir()


def test_every_command_in_the_reference_exists() -> None:
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    named = set(re.findall(r"^\| `mission-control (\w+)", README, re.M))
    assert named and named <= set(subcommands)


def test_every_sample_named_in_the_readme_exists_and_validates(shared_git_repo: GitRepo) -> None:
    named = set(re.findall(r"`([\w-]+\.yaml)`", README)) - {"plan.yaml"}
    assert "agents.yaml" in named and "ci.yaml" in named
    for name in named:
        path = ROOT / "sample_plans" / name
        assert path.exists(), name
        result = load_plan(path, environ={"MC_REPO": str(shared_git_repo.path), "HOME": "/x"})
        assert result.ok, (name, [str(p) for p in result.problems])


def test_the_readme_plan_example_validates(git_repo: GitRepo, tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(version: 1.*?)```", README, re.S)
    assert example is not None
    doc = yaml.safe_load(example.group(1))
    doc["defaults"]["repo"] = str(git_repo.path)
    doc["defaults"]["tool"] = "shell"
    for phase in doc["phases"]:
        for ws in phase["workstreams"]:
            ws["tool"] = "shell"
            ws["command"] = ["true"]
            ws.pop("prompt_file", None)
            ws.pop("prompt", None)
    result = parse_plan(yaml.safe_dump(doc), tmp_path / "plan.yaml")
    assert result.ok, [str(p) for p in result.problems]


@pytest.mark.timeout(180)
def test_the_demo_runs_headless_to_its_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    code = main(["demo", "--dir", str(folder), "--headless", "--speed", "6"])
    out = capsys.readouterr().out
    assert code == 1, out  # WS-02B fails its first attempt, waiting for a retry by hand
    origin = folder / "origin.git"
    branches = subprocess.run(
        ["git", "branch", "--list", "ws/*", "--format=%(refname:short)"],
        cwd=origin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(branches) == [
        "ws/PH-01/WS-01A",
        "ws/PH-01/WS-01B",
        "ws/PH-01/WS-01C",
        "ws/PH-01/WS-01D",
        "ws/PH-01/WS-01E",
        "ws/PH-02/WS-02A",
        "ws/PH-02/WS-02C",
    ]
    subject = subprocess.run(
        ["git", "log", "-1", "--format=%s", "ws/PH-01/WS-01A"],
        cwd=origin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert subject == "[PH-01::WS-01A] Add a config loader"
    # WS-01E sees the work of both its dependencies
    files = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "ws/PH-01/WS-01E"],
        cwd=origin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"inventory/config.py", "inventory/log.py"} <= set(files)
    prs = [json.loads(line) for line in (folder / "pull-requests.jsonl").read_text().splitlines()]
    assert len(prs) == 7 and all(pr["baseRefName"] == "main" for pr in prs)
    store = RunStore(folder / ".mission-control")
    run = store.latest_run()
    assert run is not None
    records = {w.task_id: w for w in store.workstreams(run.run_id)}
    assert records["PH-02::WS-02B"].state.value == "failed"
    conflicts = dict(records["PH-01::WS-01D"].conflicts) | dict(records["PH-01::WS-01C"].conflicts)
    assert any("inventory/utils.py" in files for files in conflicts.values()), conflicts
    assert "conflicts forecast" in out
