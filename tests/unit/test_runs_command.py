"""``mission-control runs`` lists the ledger's runs: id, plan, start, state and counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mission_control.cli import main
from mission_control.engine.states import WsState
from mission_control.store.records import WorkstreamRow
from mission_control.store.runs import RunStore


def _rows(*ids: str) -> list[WorkstreamRow]:
    return [
        WorkstreamRow(f"P1::{i}", "P1", i, f"work {i}", "shell", f"ws/{i}", f"/wt/{i}") for i in ids
    ]


def test_runs_lists_every_run_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with RunStore(state) as store:
        store.create_run("run-old", tmp_path / "a.yaml", "plan a", {}, _rows("A", "B"), at=1000.0)
        store.record_state("run-old", "P1::A", WsState.SUCCEEDED, "", 1001.0)
        store.record_state("run-old", "P1::B", WsState.FAILED, "exit 3", 1002.0)
        store.finish_run("run-old", "failed", 1003.0)
        store.create_run(
            "run-new", tmp_path / "b.yaml", "plan b", {}, _rows("A", "B", "C"), at=2000.0
        )
        store.record_state("run-new", "P1::A", WsState.SUCCEEDED, "", 2001.0)

    assert main(["runs", "--state-dir", str(state)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "PLAN", "STARTED", "STATE", "WORKSTREAMS"]
    assert lines[1].startswith("run-new") and "plan b" in lines[1]
    assert "running (no driver)" in lines[1] and "2 pending, 1 succeeded" in lines[1]
    assert lines[2].startswith("run-old") and "failed" in lines[2]
    assert "1 succeeded" in lines[2] and "1 failed" in lines[2]

    assert (
        main(["runs", "--state-dir", str(state), "--json", "--plan", str(tmp_path / "a.yaml")]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in data] == ["run-old"]
    assert data[0]["workstreams"] == {"succeeded": 1, "failed": 1}
    assert data[0]["finished_at"] == 1003.0


def test_runs_without_a_state_folder_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no runs in" in err and "--state-dir" in err
