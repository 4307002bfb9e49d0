"""The conflict forecast sees the base as it is now, and hears when it moves.

A change pushed to the base on the remote during the run (by someone else: a
separate clone) must reach the next forecast, and branches that finished
before it are forecast again against the moved base.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mission_control.store.runs import RunStore
from tests.engine.engine_helpers import make_engine, write_plan

if TYPE_CHECKING:
    from tests.engine.conftest import GitSandbox


def _sh(ws_id: str, line: str) -> dict[str, Any]:
    return {"id": ws_id, "name": f"workstream {ws_id}", "tool": "shell", "command": [line]}


def _edit(n: int, text: str, file: str = "f.txt") -> str:
    return f"sed -i 's/^line {n}$/{text}/' {file}"


async def test_a_base_pushed_during_the_run_is_fetched_and_earlier_branches_forecast_again(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    assert sb.origin is not None
    clone = tmp_path / "someone-else"
    # While B runs, someone else pushes to origin's main a change of lines 1 and 10.
    upstream = (
        f"git clone -q {sb.origin} {clone} && cd {clone}"
        f" && {_edit(1, 'upstream 1')} && {_edit(10, 'upstream 10')}"
        " && git commit -qam upstream && git push -q origin HEAD:main && cd - >/dev/null"
    )
    plan = write_plan(
        tmp_path,
        sb.repo,
        [
            (
                "P1",
                1,  # one after the other: A is finished before the base moves
                [
                    {**_sh("A", _edit(1, "A 1")), "shell": True},
                    {**_sh("B", f"{upstream} && {_edit(10, 'B 10')}"), "shell": True},
                ],
            )
        ],
        pr={"enabled": False},
        push=False,
    )
    tracking_before = sb.git(sb.repo, "rev-parse", "refs/remotes/origin/main")
    state = tmp_path / "state"
    engine = make_engine(plan, state)
    assert await engine.run() is True

    assert sb.git(sb.repo, "rev-parse", "refs/remotes/origin/main") != tracking_before
    views = engine.snapshot().workstreams
    # B forecast against the base as it is now, not as it was when B's worktree was made.
    assert dict(views["P1::B"].conflicts) == {"base:main": ("f.txt",)}
    # A finished first, with no conflict; the base moved: A was forecast again.
    assert dict(views["P1::A"].conflicts) == {"base:main": ("f.txt",)}
    stored = {w.task_id: dict(w.conflicts) for w in RunStore(state).workstreams(engine.run_id)}
    assert stored["P1::A"] == {"base:main": ("f.txt",)}
    assert stored["P1::B"] == {"base:main": ("f.txt",)}
