"""Throughput: 100 trivial workstreams at parallel 8 against a bare shell loop.

Target: mission-control takes at most 1.25x the loop's time.

mission-control runs a one-phase plan of 100 independent workstreams (no
checks, no pull requests) at ``max_parallel_workstreams: 8``, in this process,
timed from loading the plan to ``run()`` returning. Each workstream's tool is
one shell line writing one file, so nearly all the time is the engine and git.

The baseline is ``xargs -P8`` running, per workstream, a ``sh`` script doing
what a person would script by hand to get the same result:

    flock REPO/.git/bench.lock git worktree add -q -b loop/ID WT/ID main
    cd WT/ID && sh -c 'echo ID > ID.txt' && git add -A && git commit -q -m ID
    (--origin: git push -q origin loop/ID)

Each workstream's script runs in its own session (``setsid``): the engine starts
every git call and every tool in a new session, and with Linux's scheduler
autogroups each session is scheduled as one group, so on a machine busy with
other work a loop confined to one session would get less CPU than the engine
for reasons that have nothing to do with either. ``flock`` serialises
``worktree add`` the way the engine's per-repository lock does (parallel
``worktree add`` on one repository can trip over git's own lock files). Both
sides start from an identical fresh repository and leave 100 branches, each
with one commit.

Without ``--origin`` the repository has no remote, so the engine skips pushing
(and fetching); with it, both sides push every branch to a bare origin.

    uv run python benchmarks/bench_throughput.py [--workstreams 100] [--parallel 8] [--origin]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import (
    EngineRun,
    git,
    machine_line,
    make_repo,
    report,
    run_engine,
    scratch,
    shell_ws,
    write_plan,
)

TARGET_RATIO = 1.25

_ONE = r"""
set -e
id=$1; repo=$2; wt=$3; push=$4
flock "$repo/.git/bench.lock" git -C "$repo" worktree add -q -b "loop/$id" "$wt/$id" main
cd "$wt/$id"
sh -c "echo $id > $id.txt"
git add -A
git commit -q -m "$id"
if [ "$push" = 1 ]; then git push -q origin "loop/$id"; fi
"""


@dataclass
class _Took:
    wall: float
    own_cpu: float
    """CPU seconds of this process (the engine's event loop and threads)."""
    child_cpu: float
    """CPU seconds of every process started for the run (git, shells, tools)."""


def _timed(run: Callable[[], object]) -> _Took:
    before, began = os.times(), time.perf_counter()
    run()
    after, wall = os.times(), time.perf_counter() - began
    return _Took(
        wall,
        max(0.0, after.user + after.system - before.user - before.system),
        after.children_user + after.children_system - before.children_user - before.children_system,
    )


def _loop(folder: Path, ids: list[str], parallel: int, origin: bool) -> _Took:
    repo = make_repo(folder, origin=origin)
    wt = folder / "worktrees"
    wt.mkdir()
    script = folder / "one.sh"
    script.write_text(_ONE)
    took = _timed(
        lambda: subprocess.run(
            [
                "xargs",
                f"-P{parallel}",
                "-I{}",
                "setsid",
                "-w",
                "sh",
                str(script),
                "{}",
                str(repo),
                str(wt),
                "1" if origin else "0",
            ],
            input="\n".join(ids) + "\n",
            text=True,
            check=True,
        )
    )
    made = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/loop/").splitlines()
    if len(made) != len(ids):
        raise RuntimeError(f"the loop made {len(made)} branches, not {len(ids)}")
    return took


def _engine(folder: Path, ids: list[str], parallel: int, origin: bool) -> _Took:
    repo = make_repo(folder, origin=origin)
    workstreams = [shell_ws(i, f"echo {i} > {i}.txt") for i in ids]
    plan = write_plan(folder, repo, workstreams, parallel=parallel, push=origin)
    runs: list[EngineRun] = []
    took = _timed(lambda: runs.append(run_engine(plan, folder / "state")))
    if not runs[0].ok:
        raise RuntimeError(f"not every workstream succeeded: {runs[0].failures()}")
    made = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/ws/").splitlines()
    if len(made) != len(ids):
        raise RuntimeError(f"the engine made {len(made)} branches, not {len(ids)}")
    return took


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workstreams", type=int, default=100)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--origin", action="store_true", help="both sides push to a bare origin")
    args = p.parse_args()
    ids = [f"W{i:03d}" for i in range(args.workstreams)]
    print(machine_line())
    print(
        f"{args.workstreams} trivial workstreams at parallel {args.parallel};"
        f" {'push to a bare origin' if args.origin else 'no remote, no push'}"
    )
    with scratch("bench-throughput-") as folder:
        loop = _loop(folder / "loop", ids, args.parallel, args.origin)
        engine = _engine(folder / "engine", ids, args.parallel, args.origin)
    print("                   wall     CPU: own + started processes (git, sh, tools)")
    for name, took in (("sh loop", loop), ("mission-control", engine)):
        print(
            f"  {name:<15} {took.wall:6.2f} s     {took.own_cpu:6.2f} s + {took.child_cpu:6.2f} s"
        )
    ratio = engine.wall / loop.wall
    report(
        f"{args.workstreams} workstreams at parallel {args.parallel}, wall time",
        figure=f"{engine.wall:.2f} s ({args.workstreams / engine.wall:.1f} workstreams/s)",
        baseline=f"{loop.wall:.2f} s ({args.workstreams / loop.wall:.1f} workstreams/s,"
        f" xargs -P{args.parallel} sh loop)",
        ratio=ratio,
        target=f"<= {TARGET_RATIO}x the loop",
        passed=ratio <= TARGET_RATIO,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
