"""A phase's forecasts grow with its branches, not with their pairs, and name the same conflicts."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

from mission_control.git.conflicts import forecast_conflicts, trial_merge
from tests.helpers.git_trace import git_commands, traced

if TYPE_CHECKING:
    from pathlib import Path

    import pytest
    from conftest import GitSandbox

BRANCHES = 32


def _branch(sb: GitSandbox, name: str, files: dict[str, str]) -> str:
    """A branch of one commit on ``main`` writing ``files``, made without any checkout."""
    env = {**os.environ, "GIT_INDEX_FILE": str(sb.tmp / f"index-{name.replace('/', '-')}")}

    def git(*args: str, stdin: str | None = None) -> str:
        out = subprocess.run(
            ["git", *args], cwd=sb.repo, env=env, input=stdin, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    git("read-tree", "main")
    for path, text in files.items():
        blob = git("hash-object", "-w", "--stdin", stdin=text)
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    commit = git("commit-tree", git("write-tree"), "-p", "main", "-m", name)
    git("update-ref", f"refs/heads/{name}", commit)
    return name


def _started(trace: Path) -> list[str]:
    """The git commands (their first word) git's trace2 saw start; clears the trace."""
    return [argv.split()[0] for argv in git_commands(trace)]


def _forecast_as_they_finish(
    sb: GitSandbox, branches: list[str]
) -> list[list[tuple[str, list[str]]]]:
    """Each branch forecast against those finished before it, as the engine does."""
    return [forecast_conflicts(sb.repo, b, branches[:i], "main") for i, b in enumerate(branches)]


def test_same_file_branches_cost_merges_linear_in_branches(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    # All write one file (the same content, so no pair conflicts), each also its own file.
    branches = [
        _branch(sb, f"ws/PH1/W{i:02d}", {"shared.txt": "done\n", f"w{i:02d}.txt": f"{i}\n"})
        for i in range(BRANCHES)
    ]
    trace = traced(tmp_path, monkeypatch)

    found = _forecast_as_they_finish(sb, branches)

    assert found == [[] for _ in branches]
    # Pair by pair this was 32 * 31 / 2 = 496 merges; now about two per branch.
    started = _started(trace)
    assert started.count("merge-tree") <= 2 * BRANCHES, started.count("merge-tree")


def test_the_combined_merge_names_the_same_conflicts_as_every_pair(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    lines = [f"line {i}\n" for i in range(1, 11)]

    def edited(index: int, text: str) -> str:
        return "".join(text + "\n" if i == index else line for i, line in enumerate(lines))

    branches = [_branch(sb, f"ws/PH1/S{i:02d}", {"shared.txt": "same\n"}) for i in range(12)]
    branches.insert(3, _branch(sb, "ws/PH1/X1", {"shared.txt": "not the same\n"}))
    branches.insert(7, _branch(sb, "ws/PH1/X2", {"shared.txt": "different again\n"}))
    branches.insert(5, _branch(sb, "ws/PH1/T1", {"f.txt": edited(0, "top")}))
    branches.insert(9, _branch(sb, "ws/PH1/T2", {"f.txt": edited(0, "top, otherwise")}))
    branches.insert(11, _branch(sb, "ws/PH1/B1", {"f.txt": edited(9, "bottom")}))
    branches.append(_branch(sb, "ws/PH1/D1", {"shared.txt/inside": "a folder now\n"}))

    found = _forecast_as_they_finish(sb, branches)

    expected = [
        [(o, files) for o in branches[:i] if (files := trial_merge(sb.repo, b, o))]
        for i, b in enumerate(branches)
    ]
    assert found == expected
    assert any(found)  # the mix really conflicts somewhere
    # Forecast again (the engine does when the base moves): the same answer.
    assert _forecast_as_they_finish(sb, branches) == expected


def test_the_same_edit_again_makes_no_new_combined_commit(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    same = [_branch(sb, f"ws/PH1/S{i:02d}", {"shared.txt": "done\n"}) for i in range(12)]
    other = _branch(sb, "ws/PH1/X", {"shared.txt": "not done\n"})
    trace = traced(tmp_path, monkeypatch)

    found = _forecast_as_they_finish(sb, [*same, other])

    assert found[:-1] == [[] for _ in same]
    assert found[-1] == [(b, ["shared.txt"]) for b in same]
    # One commit merges the first two; the ten after it add nothing to its tree.
    assert _started(trace).count("commit-tree") == 1
