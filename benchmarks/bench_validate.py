"""How long validating a large plan takes: 2,000 workstreams must load in under 1 s.

Builds a real git repository and a plan in a temporary folder, then times, on
the same file and in the same run:

* ``yaml.safe_load`` (PyYAML with libyaml when available) — the baseline, the
  cost of only reading the YAML;
* ``load_plan`` without file system checks — parsing, schema, resolution, graph;
* ``load_plan`` as ``mission-control validate`` runs it, with git and file checks.

Each is the best of a few rounds. Exits 1 when the full load takes 1 s or more.

    uv run python benchmarks/bench_validate.py [--workstreams 2000] [--phases 10]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from mission_control.plan.loader import load_plan

BUDGET_SECONDS = 1.0
_GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=_GIT_ENV, check=True, capture_output=True)


def make_repo(root: Path) -> Path:
    """A repository with one commit on ``main``, pushed to a bare ``origin``."""
    repo, origin = root / "repo", root / "origin.git"
    repo.mkdir()
    _git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# bench\n")
    _git(repo, "add", "README.md")
    _git(repo, "commit", "-q", "-m", "Initial commit")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "-u", "origin", "main")
    return repo


def generate_plan(
    folder: Path, repo: Path, workstreams: int = 2000, phases: int = 10, seed: int = 7
) -> Path:
    """Write ``plan.yaml`` (design-note style: every key on every workstream) and prompts.

    Each workstream depends on up to three earlier ones of its phase and, now
    and then, on one of the previous phase. Returns the plan's path.
    """
    rng = random.Random(seed)
    prompts = folder / "prompts"
    prompts.mkdir(parents=True, exist_ok=True)
    for i in range(20):
        (prompts / f"task-{i}.txt").write_text(f"Task {i}: improve the code.\n")
    per_phase = max(1, workstreams // phases)
    lines = ["version: 1", "name: Generated", "phases:"]
    previous: list[str] = []
    made = 0
    for p in range(phases):
        phase_id = f"PH-{p:02d}"
        size = per_phase if p < phases - 1 else workstreams - made
        lines += [
            f"  - id: {phase_id}",
            f'    name: "Phase {p}"',
            "    max_parallel_workstreams: 8",
            "    workstreams:",
        ]
        ids: list[str] = []
        for w in range(size):
            ws_id = f"WS-{p:02d}-{w:04d}"
            deps = rng.sample(ids, k=min(len(ids), rng.randint(0, 3)))
            if previous and rng.random() < 0.2:
                deps.append(f"{f'PH-{p - 1:02d}'}::{rng.choice(previous)}")
            lines += [
                f"      - id: {ws_id}",
                f'        name: "Workstream {p}.{w}"',
                f'        repo: "{repo}"',
                '        base_branch: "main"',
                f'        tool: "{rng.choice(["aider", "codex", "claude"])}"',
                f'        prompt_file: "prompts/task-{rng.randrange(20)}.txt"',
                f"        timeout_minutes: {rng.choice([15, 30, 60, 90])}",
                f"        depends_on: [{', '.join(deps)}]",
            ]
            ids.append(ws_id)
        previous = ids
        made += size
    plan = folder / "plan.yaml"
    plan.write_text("\n".join(lines) + "\n")
    return plan


def best_of(rounds: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workstreams", type=int, default=2000)
    parser.add_argument("--phases", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp:
        root = Path(tmp)
        plan = generate_plan(root / "plan", make_repo(root), args.workstreams, args.phases)
        size_kb = plan.stat().st_size / 1024
        result = load_plan(plan)
        if not result.ok:
            for problem in result.problems[:10]:
                print(problem, file=sys.stderr)
            return 2
        assert result.plan is not None
        count = len(result.plan.workstreams)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        def baseline() -> object:
            return yaml.load(plan.read_text(), Loader=loader)  # a safe loader

        safe = best_of(args.rounds, baseline)
        no_fs = best_of(args.rounds, lambda: load_plan(plan, check_filesystem=False))
        full = best_of(args.rounds, lambda: load_plan(plan))
        print(f"plan: {count} workstreams in {args.phases} phases, {size_kb:.0f} KiB")
        print(f"yaml.safe_load ({loader.__name__}) baseline: {safe * 1000:8.1f} ms")
        print(f"load_plan, no file system checks:      {no_fs * 1000:8.1f} ms")
        print(f"load_plan, full validation (git):       {full * 1000:8.1f} ms")
        print(f"ratio full / baseline: {full / safe:.1f}x; budget {BUDGET_SECONDS:.1f} s")
        if full >= BUDGET_SECONDS:
            print("FAIL: validation is over budget", file=sys.stderr)
            return 1
        print("OK")
        return 0


if __name__ == "__main__":
    sys.exit(main())
