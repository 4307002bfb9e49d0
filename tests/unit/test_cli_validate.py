"""`mission-control validate`: what a person sees, the JSON, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mission_control import __version__
from mission_control.cli import build_parser, format_duration, main

PLAN = """\
version: 1
name: Demo
defaults:
  repo: @REPO@
  base_branch: main
  timeout_minutes: 30
  env: {API_KEY: sk-very-secret}
phases:
  - id: PH-1
    name: First
    max_parallel_workstreams: 2
    workstreams:
      - {id: WS-A, tool: aider, prompt: a, timeout_minutes: 60}
      - {id: WS-B, tool: codex, prompt: b}
      - {id: WS-C, tool: codex, prompt: c, depends_on: [WS-A, WS-B]}
  - id: PH-2
    name: Second
    max_parallel_workstreams: 1
    workstreams:
      - {id: WS-D, tool: shell, command: [ls], depends_on: PH-1::WS-C, timeout_minutes: 0.5}
"""


@pytest.fixture
def plan_file(tmp_path: Path, shared_git_repo: Any) -> Path:
    file = tmp_path / "plan.yaml"
    file.write_text(PLAN.replace("@REPO@", str(shared_git_repo.path)))
    return file


def test_valid_plan_prints_phases_layers_tools_and_duration(
    plan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(plan_file)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"Demo — {plan_file}" in out
    assert "2 phases, 4 workstreams" in out
    assert "PH-1  First  (3 workstreams, up to 2 at once)" in out
    assert "  layer 1: WS-A, WS-B | layer 2: WS-C" in out
    assert "  layer 1: WS-D" in out
    assert "  tools: aider, codex" in out
    assert "worst case: 1h 30m (longest chain 1h 30m: WS-A -> WS-C)" in out
    assert "Tools used:" in out
    assert "aider " in out and "codex " in out and "shell " in out
    assert "Worst-case duration: 1h 30m" in out  # whole minutes
    assert "sk-very-secret" not in out


def test_phase_filter(plan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(plan_file), "--phase", "PH-2"]) == 0
    out = capsys.readouterr().out
    assert "PH-2  Second" in out and "PH-1  First" not in out
    assert "Worst-case duration: 30s" in out
    assert main(["validate", str(plan_file), "--phase", "PH-9"]) == 2
    err = capsys.readouterr().err
    assert "no phase 'PH-9' — phases in this plan: PH-1, PH-2" in err


def test_json_output(plan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(plan_file), "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["ok"] is True
    assert data["plan"]["name"] == "Demo"
    assert [p["layers"] for p in data["phases"]] == [[["WS-A", "WS-B"], ["WS-C"]], [["WS-D"]]]
    assert data["phases"][0]["longest_chain"] == ["PH-1::WS-A", "PH-1::WS-C"]
    assert data["phases"][0]["worst_case_seconds"] == 90 * 60
    assert data["worst_case_seconds"] == 90 * 60 + 30
    assert set(data["tools"]) == {"aider", "codex", "shell"}
    assert "sk-very-secret" not in out


def test_invalid_plan_lists_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "plan.yaml"
    bad.write_text(
        'phases:\n  - id: PH-1\n    workstreams:\n      - id: WS-A\n        repo: "C:\\Repos\\x"\n'
    )
    assert main(["validate", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert 'plan.yaml:5:18: repo: "\\R" is not a YAML escape' in err
    assert "1 problem; the plan was not loaded" in err
    assert "Traceback" not in err

    bad.write_text("phases:\n  - id: PH-1\n    max_parallel_workstreams: 0\n    workstreams: []\n")
    assert main(["validate", str(bad), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert [(p["line"], p["message"]) for p in data["problems"]] == [
        (3, "must be at least 1, got 0"),
        (4, "the phase has no workstreams"),
    ]


def test_missing_plan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read the plan file" in capsys.readouterr().err


def test_version_and_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mission-control {__version__}"
    assert main(["validate", "--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mission-control {__version__}"
    assert main(["--help"]) == 0
    assert "validate" in capsys.readouterr().out
    assert main(["validate", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--phase ID" in help_text and "--json" in help_text
    assert main(["validate"]) == 2  # PLAN is required
    assert "PLAN" in capsys.readouterr().err


def test_debug_flag_is_accepted_before_or_after_the_command(plan_file: Path) -> None:
    parser = build_parser()
    assert parser.parse_args(["--debug", "validate", str(plan_file)]).debug is True
    assert parser.parse_args(["validate", str(plan_file), "--debug"]).debug is True
    assert getattr(parser.parse_args(["validate", str(plan_file)]), "debug", False) is False


def test_format_duration() -> None:
    assert format_duration(30) == "30s"
    assert format_duration(60) == "1m"
    assert format_duration(5400) == "1h 30m"
    assert format_duration(7200) == "2h"
    assert format_duration(86400 + 3600 + 60) == "1d 1h 1m"


def test_module_entry_point_exits_2_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "plan.yaml"
    bad.write_text("phases:\n  - id: PH 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mission_control", "validate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "plan.yaml:2:9: phases[0].id: phase id 'PH 1' cannot be used" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "textual" not in proc.stderr
