"""Log rate: 8 agents printing lines as fast as they can, under the engine and without it.

Target: under mission-control the agents reach at least 0.9x the rate they reach
writing straight to files with nothing watching.

Each agent is the scripted agent with ``--lines N`` (line-buffered: one write per
line), its output appended to a log file, as the supervisor does.

* Baseline: 8 agents started by a bare ``Popen`` with stdout and stderr on a file
  opened for appending, each in its own session as the supervisor starts them
  (with Linux's scheduler autogroups a session is scheduled as one group, so on a
  busy machine 8 sessions get far more CPU than 8 processes in one: the baseline
  must not be handicapped by that); nothing else runs.
* mission-control: a plan of 8 such workstreams at parallel 8, run in this
  process; the supervisor sends their output to the attempts' logs and the
  metrics sampler watches the processes and the logs once a second.

The agents are held at a start line so that all 8 write at the same time on
both sides (the engine makes worktrees one after another, so otherwise the
first would run alone for a while): each tool waits on a shared ``flock`` of a
file this process holds exclusively, and the clock starts when it lets go.
The rate is 8N lines over the time from the release to the last agent's exit.
Rounds alternate (baseline, engine, baseline, engine, …) and the best round of
each side counts, so a burst of load from elsewhere on the machine hurts one
round, not the figure.

    uv run python benchmarks/bench_logs.py [--lines 200000] [--agents 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import (
    AGENT,
    EngineRun,
    build_engine,
    machine_line,
    make_repo,
    report,
    scratch,
    write_plan,
)

from mission_control.engine import events as ev
from mission_control.engine.states import WsState

TARGET_RATIO = 0.9


def _held_lock(path: Path) -> int:
    """An exclusive lock on ``path``; closing the descriptor lets the agents go."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _agent_line(lock: Path, lines: int) -> str:
    agent = shlex.join([sys.executable, str(AGENT), "--lines", str(lines)])
    return f"flock -s {shlex.quote(str(lock))} true && exec {agent}"


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _baseline(folder: Path, agents: int, lines: int) -> float:
    folder.mkdir(parents=True)
    lock = folder / "go.lock"
    fd = _held_lock(lock)
    procs: list[subprocess.Popen[bytes]] = []
    logs = [folder / f"agent-{i}.log" for i in range(agents)]
    try:
        for log in logs:
            with log.open("ab") as out:
                procs.append(
                    subprocess.Popen(
                        ["/bin/sh", "-c", _agent_line(lock, lines)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        time.sleep(0.5)  # let every shell reach the lock, as the engine's do
    finally:
        go = time.time()
        os.close(fd)
    last = go
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"a baseline agent exited {proc.returncode}")
        last = max(last, time.time())
    # Every exit is awaited in turn; the last one to be awaited is the last to end.
    for log in logs:
        if _count_lines(log) != lines:
            raise RuntimeError(f"{log} has {_count_lines(log)} lines, not {lines}")
    return agents * lines / (last - go)


async def _engine_round(folder: Path, agents: int, lines: int) -> float:
    folder.mkdir(parents=True)
    repo = make_repo(folder, origin=False)
    lock = folder / "go.lock"
    fd = _held_lock(lock)
    workstreams = [
        {
            "id": f"A{i}",
            "name": f"agent {i}",
            "tool": "shell",
            "shell": True,
            "command": _agent_line(lock, lines),
        }
        for i in range(agents)
    ]
    plan = write_plan(folder, repo, workstreams, parallel=agents)
    engine = build_engine(plan, folder / "state")
    running: set[str] = set()
    ended: dict[str, float] = {}
    logs: dict[str, str] = {}
    all_running = asyncio.Event()
    seen: list[ev.Event] = []

    def on_event(event: ev.Event) -> None:
        seen.append(event)
        match event:
            case ev.WorkstreamStateChanged(task_id=task_id, new=WsState.RUNNING):
                running.add(task_id)
                if len(running) == agents:
                    all_running.set()
            case ev.AttemptStarted(task_id=task_id, log_path=log_path):
                logs[task_id] = log_path
            case ev.AttemptEnded(task_id=task_id, at=at):
                ended[task_id] = at

    engine.subscribe(on_event)
    run = asyncio.create_task(engine.run())
    try:
        waiting = asyncio.create_task(all_running.wait())
        done, _ = await asyncio.wait({run, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if run in done:
            raise RuntimeError(f"the run ended early: {EngineRun(False, seen).failures()}")
        await asyncio.sleep(0.5)  # the same head start the baseline's shells get
    finally:
        go = time.time()
        os.close(fd)
    if not await run:
        raise RuntimeError(f"a workstream did not succeed: {EngineRun(False, seen).failures()}")
    for task_id, log_path in logs.items():
        found = sum(
            1 for line in Path(log_path).read_text().splitlines() if line.startswith("line ")
        )
        if found != lines:
            raise RuntimeError(f"{task_id}: {found} lines in its log, not {lines}")
    return agents * lines / (max(ended.values()) - go)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=200_000, help="lines per agent")
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="rounds of each side")
    args = p.parse_args()
    print(machine_line())
    print(f"{args.agents} agents x {args.lines:,} lines, {args.rounds} rounds of each side")
    base: list[float] = []
    ours: list[float] = []
    with scratch("bench-logs-") as folder:
        for r in range(args.rounds):
            base.append(_baseline(folder / f"base-{r}", args.agents, args.lines))
            print(
                f"  round {r + 1}: files, nothing watching: {base[-1]:>10,.0f} lines/s", flush=True
            )
            ours.append(asyncio.run(_engine_round(folder / f"engine-{r}", args.agents, args.lines)))
            print(
                f"  round {r + 1}: under mission-control:    {ours[-1]:>10,.0f} lines/s", flush=True
            )
    best, best_base = max(ours), max(base)
    ratio = best / best_base
    report(
        f"{args.agents} agents logging as fast as they can, best of {args.rounds} rounds",
        figure=f"{best:,.0f} lines/s",
        baseline=f"{best_base:,.0f} lines/s (plain files, nothing watching)",
        ratio=ratio,
        target=f">= {TARGET_RATIO}x the baseline",
        passed=ratio >= TARGET_RATIO,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
