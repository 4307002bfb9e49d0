"""The fast path from the command line: ``mission-control run --headless`` against a shell loop.

Targets (issue "The engine's shape", "Done means"):

* ``distinct``: 100 trivial workstreams at parallel 8, each writing its own file,
  at most 1.25x the loop's wall time;
* ``same-file``: the same, but all 100 write one file (same content, so no pair
  really conflicts, yet every pair shares a path), at most 1.5x;
* ``chain``: a chain of 20 workstreams, per link beyond start-up (a 20-link run
  less a 1-link run, divided by 19), at most 1.25x the loop's per link (measured
  the same way).

mission-control runs as a child process, ``python -m mission_control run PLAN
--headless``, so Python's start-up, the plan's loading and validation, the
ledger and the branch claims are all inside the figure. The baseline is what a
person would script by hand for the same result:

    flock REPO/.git/bench.lock git worktree add -q -b loop/ID WT/ID START
    cd WT/ID && sh -c TOOL && git add -A && git commit -q -m ID

run by ``xargs -P8`` (each in its own session, as the engine's git and tools are:
see README, scheduler autogroups), or one after another for the chain, each
link starting from the branch before it. ``--origin`` adds a bare origin and a
``git push`` per branch on both sides.

The machine is shared and a loop's time moves a lot with its load (3 s and 7.5 s
for the same loop minutes apart), so each scenario runs ``--rounds`` times, the
two sides alternating, and the best round of each side counts.

Both sides run with ``GIT_TRACE2_EVENT`` pointed at a folder, so git writes one
file per process it starts: the count of top-level git commands (not the helpers
git starts itself) is printed beside each time, total and per workstream. The
trace costs both sides the same small amount per git command.

    uv run python benchmarks/bench_cli.py [--scenario distinct|same-file|chain|all]
        [--workstreams 100] [--parallel 8] [--links 20] [--rounds 3] [--origin]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, git, machine_line, make_repo, report, scratch, shell_ws, write_plan

TARGETS = {"distinct": 1.25, "same-file": 1.5, "chain": 1.25}

_ONE = r"""
set -e
id=$1; repo=$2; wt=$3; start=$4; push=$5; tool=$6
flock "$repo/.git/bench.lock" git -C "$repo" worktree add -q -b "loop/$id" "$wt/$id" "$start"
cd "$wt/$id"
sh -c "$tool"
git add -A
git commit -q -m "$id"
if [ "$push" = 1 ]; then git push -q origin "loop/$id"; fi
"""


@dataclass(frozen=True)
class _Took:
    wall: float
    cpu: float
    """CPU seconds of every process started for the run (the engine, git, shells, tools)."""
    git: int
    """Top-level git commands started."""


def _git_commands(trace: Path) -> int:
    """Git processes that were not started by another git (their session id has no '/')."""
    count = 0
    for file in trace.iterdir():
        with file.open(encoding="utf-8") as lines:
            first = lines.readline()
        try:
            sid = json.loads(first).get("sid", "")
        except json.JSONDecodeError:
            continue
        count += "/" not in sid
    return count


def _timed(folder: Path, run: Callable[[dict[str, str]], None]) -> _Took:
    trace = folder / "trace2"
    trace.mkdir()
    env = {**os.environ, "GIT_TRACE2_EVENT": str(trace)}
    before, began = os.times(), time.perf_counter()
    run(env)
    after, wall = os.times(), time.perf_counter() - began
    cpu = after.children_user + after.children_system
    cpu -= before.children_user + before.children_system
    return _Took(wall, cpu, _git_commands(trace))


def _tool(kind: str, ws_id: str) -> str:
    return "echo done > shared.txt" if kind == "same-file" else f"echo {ws_id} > {ws_id}.txt"


# ---------------------------------------------------------------- the loop


def _loop(folder: Path, kind: str, ids: list[str], parallel: int, origin: bool) -> _Took:
    repo = make_repo(folder, origin=origin)
    wt = folder / "worktrees"
    wt.mkdir()
    script = folder / "one.sh"
    script.write_text(_ONE)
    push = "1" if origin else "0"

    def one(env: dict[str, str], ws_id: str, start: str) -> list[str]:
        return ["setsid", "-w", "sh", str(script), ws_id, str(repo), str(wt), start, push,
                _tool(kind, ws_id)]  # fmt: skip

    def run(env: dict[str, str]) -> None:
        if kind == "chain":
            start = "main"
            for ws_id in ids:
                subprocess.run(one(env, ws_id, start), env=env, check=True)
                start = f"loop/{ws_id}"
            return
        lines = "".join(f"{i}\n" for i in ids)
        subprocess.run(
            ["xargs", f"-P{parallel}", "-I{}", *one(env, "{}", "main")],
            input=lines,
            text=True,
            env=env,
            check=True,
        )

    took = _timed(folder, run)
    made = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/loop/").splitlines()
    if len(made) != len(ids):
        raise RuntimeError(f"the loop made {len(made)} branches, not {len(ids)}")
    return took


# ---------------------------------------------------------------- mission-control


def _engine(folder: Path, kind: str, ids: list[str], parallel: int, origin: bool) -> _Took:
    repo = make_repo(folder, origin=origin)
    workstreams = [
        shell_ws(ws_id, _tool(kind, ws_id), deps=[ids[i - 1]] if kind == "chain" and i else None)
        for i, ws_id in enumerate(ids)
    ]
    plan = write_plan(folder, repo, workstreams, parallel=parallel, push=origin)
    argv = [sys.executable, "-m", "mission_control", "run", str(plan), "--headless"]
    out: list[subprocess.CompletedProcess[str]] = []

    def run(env: dict[str, str]) -> None:
        out.append(subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True))

    took = _timed(folder, run)
    if out[0].returncode != 0:
        tail = "\n".join((out[0].stdout + out[0].stderr).splitlines()[-15:])
        raise RuntimeError(f"mission-control exited {out[0].returncode}:\n{tail}")
    made = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/ws/").splitlines()
    if len(made) != len(ids):
        raise RuntimeError(f"mission-control made {len(made)} branches, not {len(ids)}")
    return took


# ---------------------------------------------------------------- scenarios


def _row(name: str, took: _Took, count: int) -> None:
    print(
        f"  {name:<28} {took.wall:7.2f} s  {took.cpu:7.2f} s CPU"
        f"  {took.git:5d} git ({took.git / count:5.1f} per workstream)"
    )


def _alternating(
    rounds: int, sides: dict[str, Callable[[Path], _Took]], folder: Path
) -> dict[str, _Took]:
    """Each side's best of ``rounds``, the sides taking turns so both see the same load."""
    runs: dict[str, list[_Took]] = {name: [] for name in sides}
    for i in range(rounds):
        for name, measure in sides.items():
            runs[name].append(measure(folder / f"{name}-{i}"))
    return {name: min(took, key=lambda t: t.wall) for name, took in runs.items()}


def _wide(folder: Path, kind: str, n: int, parallel: int, origin: bool, rounds: int) -> None:
    ids = [f"W{i:03d}" for i in range(n)]
    what = "each its own file" if kind == "distinct" else "all the same file (same content)"
    print(f"\n{n} trivial workstreams at parallel {parallel}, writing {what}, best of {rounds}")
    best = _alternating(
        rounds,
        {
            "loop": lambda f: _loop(f, kind, ids, parallel, origin),
            "engine": lambda f: _engine(f, kind, ids, parallel, origin),
        },
        folder,
    )
    loop, engine = best["loop"], best["engine"]
    _row("sh loop (xargs)", loop, n)
    _row("mission-control run", engine, n)
    ratio = engine.wall / loop.wall
    report(
        f"{n} workstreams ({kind}) at parallel {parallel}, from the command line, wall time",
        figure=f"{engine.wall:.2f} s, {engine.git} git commands",
        baseline=f"{loop.wall:.2f} s, {loop.git} git commands (xargs -P{parallel} sh loop)",
        ratio=ratio,
        target=f"<= {TARGETS[kind]}x the loop",
        passed=ratio <= TARGETS[kind],
    )


def _chain(folder: Path, links: int, origin: bool, rounds: int) -> None:
    print(
        f"\na chain of {links} workstreams against one of 1 (per link beyond start-up),"
        f" best of {rounds}"
    )
    ids = [f"W{i:02d}" for i in range(links)]
    took = _alternating(
        rounds,
        {
            "loop-1": lambda f: _loop(f, "chain", ids[:1], 1, origin),
            "loop-n": lambda f: _loop(f, "chain", ids, 1, origin),
            "engine-1": lambda f: _engine(f, "chain", ids[:1], 1, origin),
            "engine-n": lambda f: _engine(f, "chain", ids, 1, origin),
        },
        folder,
    )
    _row("sh loop, 1 workstream", took["loop-1"], 1)
    _row(f"sh loop, {links} workstreams", took["loop-n"], links)
    _row("mission-control, 1", took["engine-1"], 1)
    _row(f"mission-control, {links}", took["engine-n"], links)
    per = {
        side: (took[f"{side}-n"].wall - took[f"{side}-1"].wall) / (links - 1)
        for side in ("loop", "engine")
    }
    git_per = {
        side: (took[f"{side}-n"].git - took[f"{side}-1"].git) / (links - 1)
        for side in ("loop", "engine")
    }
    print(f"  start-up of mission-control (its 1-link run): {took['engine-1'].wall:.2f} s")
    ratio = per["engine"] / per["loop"]
    report(
        f"chain of {links}, per link beyond start-up",
        figure=f"{per['engine'] * 1000:.0f} ms, {git_per['engine']:.1f} git commands per link",
        baseline=f"{per['loop'] * 1000:.0f} ms, {git_per['loop']:.1f} git commands per link"
        " (sh loop, one link after another)",
        ratio=ratio,
        target=f"<= {TARGETS['chain']}x the loop",
        passed=ratio <= TARGETS["chain"],
    )


def _compiled() -> str:
    """Compile mission-control and its packages to bytecode first, as an install does.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it), Python would
    otherwise compile every module again at each start: a third of a second of
    start-up that no installed copy pays."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    site = Path(sys.prefix)
    for folder in (ROOT / "mission_control", site):
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", str(folder)],
            env=env,
            capture_output=True,
            check=False,
        )
    return f"bytecode compiled for mission_control and {site} (as an install does)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=["distinct", "same-file", "chain", "all"], default="all")
    p.add_argument("--workstreams", type=int, default=100)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--links", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3, help="runs of each side; the best counts")
    p.add_argument("--origin", action="store_true", help="both sides push to a bare origin")
    args = p.parse_args()
    print(machine_line())
    print(_compiled())
    print("no remote, no push" if not args.origin else "push to a bare origin")
    print("                               wall      CPU (all processes)   git commands")
    began = time.perf_counter()
    with scratch("bench-cli-") as folder:
        for kind in ("distinct", "same-file"):
            if args.scenario in (kind, "all"):
                _wide(
                    folder / kind, kind, args.workstreams, args.parallel, args.origin, args.rounds
                )
        if args.scenario in ("chain", "all"):
            _chain(folder / "chain", args.links, args.origin, args.rounds)
    print(f"(took {time.perf_counter() - began:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
