"""What the engine benchmarks share: real repositories, plans, an in-process run, a report.

Every benchmark builds its own repositories in a temporary folder (a bare
``origin`` where pushing is part of what is measured), runs real git and real
processes, and removes the folder at the end. Git runs with no system or user
configuration and a fixed identity, set in this process's environment so the
engine's own git calls (which inherit it) see the same thing as the baselines.

The figures are printed in one shape by ``report``: the measurement, the
baseline measured in the same run, their ratio, and PASS/FAIL against the
target. A benchmark is a measurement, not a test: it exits 0 either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mission_control.engine import events as ev
from mission_control.engine.engine import Engine, RunOptions
from mission_control.engine.states import WsState
from mission_control.plan.loader import load_plan_or_raise

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "tests" / "helpers" / "agent.py"
"""The scripted agent (flags documented at its top)."""

GIT_ENV: dict[str, str] = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")


def isolate_git() -> None:
    """Make every git this process starts (ours and the engine's) ignore the user's config."""
    for name in _REPO_VARS:
        os.environ.pop(name, None)
    os.environ.update(GIT_ENV)


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def make_repo(root: Path, *, origin: bool) -> Path:
    """A repository with a few files on ``main``; with ``origin``, a bare remote holding main."""
    isolate_git()
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# bench\n")
    src = repo / "src"
    src.mkdir()
    for i in range(20):  # a small tree, so a checkout is not free
        (src / f"module_{i:02d}.py").write_text(f'"""module {i}"""\n\nVALUE = {i}\n' * 10)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Initial commit")
    if origin:
        bare = root / "origin.git"
        git(root, "init", "-q", "--bare", "-b", "main", str(bare))
        git(repo, "remote", "add", "origin", str(bare))
        git(repo, "push", "-q", "-u", "origin", "main")
    return repo


def write_plan(
    folder: Path,
    repo: Path,
    workstreams: list[dict[str, Any]],
    *,
    parallel: int,
    **defaults: Any,
) -> Path:
    """A one-phase plan with no checks and no PRs; worktrees go under ``folder/worktrees``."""
    doc: dict[str, Any] = {
        "version": 1,
        "name": "benchmark",
        "defaults": {
            "repo": str(repo),
            "base_branch": "main",
            "timeout_minutes": 10,
            "worktree_root": str(folder / "worktrees"),
            "checks": [],
            "pr": {"enabled": False},
            **defaults,
        },
        "phases": [
            {
                "id": "P",
                "name": "benchmark",
                "max_parallel_workstreams": parallel,
                "workstreams": workstreams,
            }
        ],
    }
    (folder / "worktrees").mkdir(exist_ok=True)
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def shell_ws(ws_id: str, line: str, *, deps: list[str] | None = None) -> dict[str, Any]:
    """A workstream whose tool is one shell command line."""
    return {
        "id": ws_id,
        "name": f"workstream {ws_id}",
        "tool": "shell",
        "shell": True,
        "command": line,
        "depends_on": deps or [],
    }


def agent_ws(ws_id: str, *flags: str) -> dict[str, Any]:
    """A workstream running the scripted agent with ``flags``."""
    return {
        "id": ws_id,
        "name": f"workstream {ws_id}",
        "tool": "shell",
        "command": [sys.executable, str(AGENT), *flags],
    }


@dataclass
class EngineRun:
    ok: bool
    events: list[ev.Event] = field(default_factory=list)

    def failures(self) -> str:
        """Each workstream that did not succeed, with its last detail (for an error message)."""
        last: dict[str, ev.WorkstreamStateChanged] = {}
        for event in self.events:
            if isinstance(event, ev.WorkstreamStateChanged):
                last[event.task_id] = event
        return "; ".join(
            f"{task} {e.new.value}: {e.detail}"
            for task, e in last.items()
            if e.new is not WsState.SUCCEEDED
        )


def build_engine(plan_path: Path, state_dir: Path, **options: Any) -> Engine:
    """Load a plan the way the CLI does and build its engine."""
    return Engine(load_plan_or_raise(plan_path), state_dir=state_dir, options=RunOptions(**options))


async def _run(plan_path: Path, state_dir: Path, options: dict[str, Any]) -> EngineRun:
    engine = build_engine(plan_path, state_dir, **options)
    events: list[ev.Event] = []
    engine.subscribe(events.append)
    ok = await engine.run()
    return EngineRun(ok, events)


def run_engine(plan_path: Path, state_dir: Path, **options: Any) -> EngineRun:
    """Run a plan in this process, as ``mission-control run --headless`` does, keeping events."""
    return asyncio.run(_run(plan_path, state_dir, options))


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder removed at the end, whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine_line() -> str:
    """Cores and load: the figures are only as steady as the machine under them."""
    load = os.getloadavg()
    return (
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        " (shared; expect noise)"
    )


def report(
    title: str,
    *,
    figure: str,
    baseline: str,
    ratio: float | None,
    target: str,
    passed: bool,
) -> None:
    """The lines every benchmark ends with; ``ratio`` None when the baseline is about zero."""
    print()
    print(f"== {title}")
    print(f"   mission-control : {figure}")
    print(f"   baseline        : {baseline}")
    shown = f"{ratio:.2f}x" if ratio is not None else "n/a (the baseline is about zero)"
    print(f"   ratio           : {shown}")
    print(f"   target          : {target}  ->  {'PASS' if passed else 'FAIL'}")
