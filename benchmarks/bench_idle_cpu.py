"""Idle cost: mission-control's own CPU while 8 agents sleep.

Target: under 1% of one core.

``mission-control run PLAN --headless`` runs in a child process (so its CPU time
is its own) with 8 workstreams of the scripted agent ``--sleep S``. Once all 8
agents are up, the engine process's user + system CPU time (every thread: event
loop, metrics sampler, store) is read with psutil at the start and end of a
window of ``--window`` seconds. Its children (the agents, and git before the
window) are not counted.

Baseline, in the same window: a bare Python supervisor that starts the same 8
agents (each in its own session) and waits for them, the least any supervisor
costs. Both run side by side, so they see the same load. Afterwards the run is
interrupted as Ctrl-C would (the agents are stopped) and everything is removed.

    uv run python benchmarks/bench_idle_cpu.py [--window 20] [--agents 8]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
from common import AGENT, agent_ws, machine_line, make_repo, report, scratch, write_plan

TARGET_PERCENT = 1.0

_BARE = """
import subprocess, sys
agents = [
    subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, start_new_session=True)
    for _ in range(int(sys.argv[1]))
]
for agent in agents:
    agent.wait()
"""


def _sleeping_agents(root: psutil.Process) -> int:
    """How many of ``root``'s descendants are the scripted agent, asleep."""
    found = 0
    for proc in root.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.cmdline()
            if str(AGENT) in cmdline and "--sleep" in cmdline:
                found += 1
    return found


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _stop(proc: subprocess.Popen[bytes], *, interrupt: bool) -> None:
    """Ctrl-C (twice if need be) for mission-control, then KILL of the group if still there."""
    if proc.poll() is None and interrupt:
        for _ in range(2):
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
                break
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _kill_agents(root: psutil.Process) -> None:
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            os.killpg(child.pid, signal.SIGKILL)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--window", type=float, default=20.0, help="seconds measured")
    p.add_argument("--agents", type=int, default=8)
    args = p.parse_args()
    sleep = args.window + 15  # outlives start-up and the window
    print(machine_line())
    print(f"{args.agents} agents sleeping {sleep:.0f} s; measuring {args.window:.0f} s")
    with scratch("bench-idle-") as folder:
        repo = make_repo(folder, origin=False)
        plan = write_plan(
            folder,
            repo,
            [agent_ws(f"A{i}", "--sleep", str(sleep)) for i in range(args.agents)],
            parallel=args.agents,
        )
        with (folder / "run.out").open("wb") as out:
            engine = subprocess.Popen(
                [
                    *(sys.executable, "-m", "mission_control", "run", str(plan)),
                    *("--headless", "--state-dir", str(folder / "state")),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        bare = subprocess.Popen(
            [
                *(sys.executable, "-c", _BARE, str(args.agents)),
                *(sys.executable, str(AGENT), "--sleep", str(sleep)),
            ],
            start_new_session=True,
        )
        engine_ps, bare_ps = psutil.Process(engine.pid), psutil.Process(bare.pid)
        try:
            deadline = time.monotonic() + 60
            while (
                _sleeping_agents(engine_ps) < args.agents or _sleeping_agents(bare_ps) < args.agents
            ):
                if engine.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the agents did not all start:\n" + (folder / "run.out").read_text()
                    )
                time.sleep(0.1)
            time.sleep(1.0)  # let start-up work (git, first samples) settle
            began = time.monotonic()
            engine_0, bare_0 = _cpu_seconds(engine_ps), _cpu_seconds(bare_ps)
            threads = engine_ps.num_threads()
            time.sleep(args.window)
            engine_1, bare_1 = _cpu_seconds(engine_ps), _cpu_seconds(bare_ps)
            took = time.monotonic() - began
            if _sleeping_agents(engine_ps) < args.agents:
                raise RuntimeError("an agent ended during the window: make --window shorter")
        finally:
            _kill_agents(bare_ps)
            _stop(bare, interrupt=False)
            _stop(engine, interrupt=True)
    ours = (engine_1 - engine_0) / took * 100
    base = (bare_1 - bare_0) / took * 100
    print(f"  mission-control: {engine_1 - engine_0:.3f} s CPU in {took:.1f} s ({threads} threads)")
    print(f"  bare supervisor: {bare_1 - bare_0:.3f} s CPU in {took:.1f} s")
    report(
        f"CPU of mission-control while {args.agents} agents sleep",
        figure=f"{ours:.2f}% of a core",
        baseline=f"{base:.2f}% of a core (bare Python supervisor waiting on the same agents)",
        ratio=ours / base if base >= 0.01 else None,
        target=f"< {TARGET_PERCENT:g}% of a core",
        passed=ours < TARGET_PERCENT,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
