"""What the Ray backend does not do on a node yet is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mission_control.errors import SetupError
from mission_control.store.runs import RunStore
from tests.conftest import GitRepo
from tests.engine.engine_helpers import make_engine, write_plan, ws

pytest.importorskip("ray")


async def test_files_and_from_are_refused_on_ray_before_the_run_starts(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    item = ws("a", "--write", "a.txt=a", **{"from": "origin/main", "link": ["node_modules"]})
    plan = write_plan(tmp_path, git_repo.path, [("P", 1, [item])])
    engine = make_engine(plan, tmp_path / "state", backend="ray")
    with pytest.raises(SetupError) as caught:
        await engine.run()
    assert str(caught.value) == (
        "P::a: `link:`, `from:` work only with the local backend for now: run with"
        " --backend local, or leave them out of the plan for a Ray run"
    )
    store = RunStore(tmp_path / "state")
    try:
        assert store.list_runs(5) == []
    finally:
        store.close()
