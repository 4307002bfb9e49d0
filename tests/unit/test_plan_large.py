"""A plan of 2,000 workstreams loads whole; benchmarks/bench_validate.py times it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from mission_control.plan import dag
from mission_control.plan.loader import load_plan

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_validate.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_validate", _BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_thousand_workstreams_load(tmp_path: Path, shared_git_repo: Any) -> None:
    bench = _bench()
    plan_file = bench.generate_plan(tmp_path, Path(shared_git_repo.path), 2000, 10)
    result = load_plan(plan_file)
    assert result.ok, [str(p) for p in result.problems[:5]]
    assert result.plan is not None
    assert len(result.plan.workstreams) == 2000
    assert len(result.plan.phases) == 10
    assert dag.makespan(result.plan) >= dag.longest_path(result.plan)[0] > 0
