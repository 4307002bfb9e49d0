"""Every plan in sample_plans/ validates against a real repository, as a person would run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mission_control.plan import dag
from mission_control.plan.loader import load_plan

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "sample_plans").glob("*.yaml"))


def test_there_are_samples_for_every_feature() -> None:
    names = {path.stem for path in SAMPLES}
    assert {
        "phase-plan",
        "defaults",
        "custom-tools",
        "workstream-options",
        "multi-phase",
        "shell-tool",
        "paths",
    } <= names


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_sample_validates(sample: Path, shared_git_repo: Any) -> None:
    head = sample.read_text().splitlines()[0]
    assert head.startswith("# "), "each sample says what it shows on its first line"
    result = load_plan(sample, environ={"MC_REPO": str(shared_git_repo.path), "HOME": "/home/x"})
    assert result.ok, "\n".join(str(p) for p in result.problems)
    assert result.plan is not None
    for phase in result.plan.phases:
        assert dag.layers(phase)
    assert dag.makespan(result.plan) > 0


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_sample_without_mc_repo_names_the_variable(sample: Path) -> None:
    result = load_plan(sample, environ={"HOME": "/home/x"})
    texts = [str(p) for p in result.problems]
    if "${MC_REPO:-" in sample.read_text() and "${MC_REPO}" not in sample.read_text():
        return
    assert any("environment variable MC_REPO is not set" in t for t in texts), texts


def test_design_note_plan_keeps_its_shape(shared_git_repo: Any) -> None:
    plan = load_plan(
        Path(SAMPLES[0]).parent / "phase-plan.yaml", environ={"MC_REPO": str(shared_git_repo.path)}
    ).plan
    assert plan is not None
    (phase,) = plan.phases
    assert (phase.id, phase.max_parallel_workstreams) == ("PH-07", 3)
    assert dag.layers(phase) == [["WS-07A"], ["WS-07B"], ["WS-07C"]]
    assert [ws.tool for ws in phase.workstreams] == ["aider", "codex", "aider"]
    assert dag.longest_path(phase) == (
        (60 + 90 + 120) * 60.0,
        ["PH-07::WS-07A", "PH-07::WS-07B", "PH-07::WS-07C"],
    )


def test_defaults_sample_merges_an_anchor(shared_git_repo: Any) -> None:
    plan = load_plan(
        Path(SAMPLES[0]).parent / "defaults.yaml", environ={"MC_REPO": str(shared_git_repo.path)}
    ).plan
    assert plan is not None
    by_id = {ws.id: ws for ws in plan.workstreams}
    assert (by_id["WS-03"].timeout_minutes, by_id["WS-03"].retries) == (120.0, 1)
    assert (by_id["WS-01"].timeout_minutes, by_id["WS-01"].retries) == (45.0, 0)
    assert by_id["WS-02"].tool == "codex" and by_id["WS-01"].tool == "claude"
    assert by_id["WS-01"].env == {"PYTHONDONTWRITEBYTECODE": "1"}
