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
for reasons that have nothing to do with either. ``flock`` serialises ``worktree add`` the way the engine's per-repository lock
does (parallel ``worktree add`` on one repository can trip over git's own lock
files). Both sides start from an identical fresh repository and leave 100
branches, each with one commit.

Without ``--origin`` the repository has no remote, so the engine skips pushing
(and fetching); with it, both sides push every branch to a bare origin.

    uv run python benchmarks/bench_throughput.py [--workstreams 100] [--parallel 8] [--origin]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import git, machine_line, make_repo, report, run_engine, scratch, shell_ws, write_plan

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


def _loop(folder: Path, ids: list[str], parallel: int, origin: bool) -> float:
    repo = make_repo(folder, origin=origin)
    wt = folder / "worktrees"
    wt.mkdir()
    script = folder / "one.sh"
    script.write_text(_ONE)
    began = time.perf_counter()
    subprocess.run(
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
    took = time.perf_counter() - began
    made = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/loop/").splitlines()
    if len(made) != len(ids):
        raise RuntimeError(f"the loop made {len(made)} branches, not {len(ids)}")
    return took


def _engine(folder: Path, ids: list[str], parallel: int, origin: bool) -> float:
    repo = make_repo(folder, origin=origin)
    workstreams = [shell_ws(i, f"echo {i} > {i}.txt") for i in ids]
    plan = write_plan(folder, repo, workstreams, parallel=parallel, push=origin)
    began = time.perf_counter()
    result = run_engine(plan, folder / "state")
    took = time.perf_counter() - began
    if not result.ok:
        raise RuntimeError("not every workstream succeeded")
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
        print(f"  sh loop (xargs -P{args.parallel}): {loop:6.2f} s", flush=True)
        engine = _engine(folder / "engine", ids, args.parallel, args.origin)
        print(f"  mission-control:       {engine:6.2f} s", flush=True)
    ratio = engine / loop
    report(
        f"{args.workstreams} workstreams at parallel {args.parallel}, wall time",
        figure=f"{engine:.2f} s ({args.workstreams / engine:.1f} workstreams/s)",
        baseline=f"{loop:.2f} s ({args.workstreams / loop:.1f} workstreams/s,"
        f" xargs -P{args.parallel} sh loop)",
        ratio=ratio,
        target=f"<= {TARGET_RATIO}x the loop",
        passed=ratio <= TARGET_RATIO,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
