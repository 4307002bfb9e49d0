"""Start-up: how long the command line takes before it does any work.

Target: ``mission-control --help`` well under 0.2 s beyond the interpreter's own
start-up; ``validate`` and ``run --headless`` of a trivial plan reported beside it.

Each command runs as a fresh process, the way a user runs it, and is timed wall
clock from spawn to exit; the figure is the median of ``--rounds`` rounds. In the
same rounds, interleaved so that every command sees the same load:

* ``python -c pass`` — the interpreter starting and stopping, the floor for any
  Python command line;
* ``git --version`` — one git process, the unit a run spends many of;
* ``python -c "import mission_control.cli"`` — the command line module alone, before
  ``build_parser`` imports the modules of the run commands (what ``--help`` would cost
  if those imported their engine, git and store modules only when run);
* ``python -m mission_control --help``;
* ``python -m mission_control validate PLAN`` (a plan of one workstream, with its
  git and file checks);
* ``python -m mission_control run PLAN --headless`` of that one-workstream plan
  (one ``echo``, no checks, no pull request, no origin): start-up, one worktree,
  one commit, the end of the run.

Each mission-control figure is reported beyond the ``python -c pass`` floor (the
time our imports and work add), against its target. ``--imports`` also prints the
slowest imports of ``--help`` as ``python -X importtime`` counts them.

    uv run python benchmarks/bench_startup.py [--rounds 7] [--imports]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common import (
    ROOT,
    isolate_git,
    machine_line,
    make_repo,
    median,
    report,
    scratch,
    shell_ws,
    write_plan,
)

_MC = [sys.executable, "-m", "mission_control"]


def _child_env(folder: Path) -> dict[str, str]:
    """The environment of every timed command: compiled bytecode cached, as installed.

    An installed package runs from cached bytecode; with ``PYTHONDONTWRITEBYTECODE``
    every run would compile every module again and the figures would mostly measure
    the compiler. The cache goes to the scratch folder, never into the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    env.pop("MC_CRASH_AT", None)
    return env


def _timed(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds for one run of ``argv``; a failure stops the benchmark with its output."""
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return took


def _one_workstream_plan(folder: Path) -> Path:
    folder.mkdir(parents=True)
    repo = make_repo(folder, origin=False)
    return write_plan(folder, repo, [shell_ws("ONE", "echo one > one.txt")], parallel=1)


def _measure(folder: Path, rounds: int) -> dict[str, list[float]]:
    env = _child_env(folder)
    plan = _one_workstream_plan(folder / "validate")
    # A run leaves its branch behind: each round runs its own copy of the plan and repo.
    runs = [_one_workstream_plan(folder / f"run-{n}") for n in range(rounds + 1)]
    times: dict[str, list[float]] = {}
    for n in range(rounds + 1):  # round 0 fills the bytecode cache and is not counted
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "git --version": ["git", "--version"],
            "import cli": [sys.executable, "-c", "import mission_control.cli"],
            "--help": [*_MC, "--help"],
            "validate": [*_MC, "validate", str(plan)],
            "run --headless": [*_MC, "run", str(runs[n]), "--headless",
                               "--state-dir", str(runs[n].parent / "state")],
        }  # fmt: skip
        for name, argv in commands.items():
            took = _timed(argv, ROOT, env)
            if n > 0:
                times.setdefault(name, []).append(took)
    return times


def _slowest_imports(count: int, env: dict[str, str]) -> list[str]:
    """The ``count`` imports of ``--help`` with the largest cumulative time (microseconds)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mission_control", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), m.group(3)))
    rows.sort(reverse=True)
    return [f"{us / 1000:8.1f} ms  {name}" for us, name in rows[:count]]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="runs of each command (median shown)")
    p.add_argument("--imports", action="store_true", help="print the slowest imports of --help")
    args = p.parse_args()
    isolate_git()
    print(machine_line())
    with scratch("mc-bench-startup-") as folder:
        times = _measure(folder, max(1, args.rounds))
        imports = _slowest_imports(15, _child_env(folder)) if args.imports else []
    floor = median(times["python -c pass"])
    git_one = median(times["git --version"])
    print(f"rounds: {args.rounds} (after one to warm the bytecode cache); medians, wall clock")
    for name, values in times.items():
        print(f"   {name:<16} {_ms(median(values)):>8}   (min {_ms(min(values))})")
    targets = {"--help": 0.2, "validate": 0.5, "run --headless": 1.0}
    for name, budget in targets.items():
        took = median(times[name])
        beyond = took - floor
        report(
            f"start-up: mission-control {name}",
            figure=f"{_ms(took)} median ({_ms(beyond)} beyond the interpreter)",
            baseline=f"python -c pass {_ms(floor)}, git --version {_ms(git_one)}",
            ratio=took / floor if floor > 0 else None,
            target=f"under {_ms(budget)} beyond the interpreter",
            passed=beyond < budget,
        )
    if imports:
        print()
        print("slowest imports of --help (cumulative, python -X importtime):")
        for line in imports:
            print(f"   {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
