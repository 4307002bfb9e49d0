"""The ray backend's cost: the same plan on a local Ray cluster and on the local backend.

No target comes with the issue; the figures say what a user pays for running
an attempt through Ray on one machine (where nothing is gained): the run's
wall time, and per attempt the time from "preparing" to "running" (actor
placement, the mirror fetch, the worktree, the spawn) against the same step
of the local backend (worktree add, spawn). The local backend, run in the
same process on an identical repository right before, is the baseline.

Each of the N workstreams writes one file and prints ``--lines`` lines, so
finishing (commit, push to a bare origin, the bundle back) is part of it.
The cluster (``num_cpus`` = the parallel limit) is started once before
timing; its start-up is shown apart.

    uv run python benchmarks/bench_ray.py [--workstreams 16] [--parallel 2] [--lines 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from common import (
    AGENT,
    EngineRun,
    machine_line,
    make_repo,
    median,
    percentile,
    report,
    run_engine,
    scratch,
    write_plan,
)

from mission_control.engine import events as ev
from mission_control.engine.states import WsState

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import ray


def start_latencies(run: EngineRun) -> list[float]:
    """Per workstream: seconds from its first "preparing" to its first "running"."""
    preparing: dict[str, float] = {}
    running: dict[str, float] = {}
    for event in run.events:
        if isinstance(event, ev.WorkstreamStateChanged):
            if event.new is WsState.PREPARING:
                preparing.setdefault(event.task_id, event.at)
            elif event.new is WsState.RUNNING:
                running.setdefault(event.task_id, event.at)
    return [running[t] - preparing[t] for t in running if t in preparing]


def one_run(backend: str, count: int, parallel: int, lines: int) -> tuple[float, list[float]]:
    with scratch(f"mc-bench-ray-{backend}-") as folder:
        repo = make_repo(folder, origin=True)
        workstreams = [
            {
                "id": f"W{i:03d}",
                "name": f"workstream {i}",
                "tool": "shell",
                "command": [
                    "python3",
                    str(AGENT),
                    "--lines",
                    str(lines),
                    "--write",
                    f"out/{i}.txt=work {i}",
                ],
            }
            for i in range(count)
        ]
        plan = write_plan(folder, repo, workstreams, parallel=parallel)
        started = time.perf_counter()
        run = run_engine(plan, folder / "state", backend=backend)
        wall = time.perf_counter() - started
        if not run.ok:
            raise SystemExit(f"the {backend} run failed: {run.failures()}")
        return wall, start_latencies(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workstreams", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--lines", type=int, default=200)
    args = parser.parse_args()
    print(machine_line())

    local_wall, local_starts = one_run("local", args.workstreams, args.parallel, args.lines)

    node_dir = Path(tempfile.mkdtemp(prefix="mc-bench-ray-node-"))
    os.environ["MC_NODE_DIR"] = str(node_dir)
    began = time.perf_counter()
    ray.init(
        num_cpus=args.parallel,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        namespace="mission-control",
    )
    cluster_start = time.perf_counter() - began
    try:
        ray_wall, ray_starts = one_run("ray", args.workstreams, args.parallel, args.lines)
    finally:
        ray.shutdown()

    print(f"local Ray cluster start-up (not timed below): {cluster_start:.1f} s")
    report(
        f"{args.workstreams} workstreams at parallel {args.parallel}, wall time",
        figure=f"ray backend {ray_wall:.1f} s",
        baseline=f"local backend {local_wall:.1f} s",
        ratio=ray_wall / local_wall,
        target="none set (one machine: Ray only adds cost here)",
        passed=True,
    )
    report(
        "per attempt, preparing -> running",
        figure=(
            f"ray median {median(ray_starts) * 1000:.0f} ms,"
            f" p90 {percentile(ray_starts, 90) * 1000:.0f} ms"
        ),
        baseline=(
            f"local median {median(local_starts) * 1000:.0f} ms,"
            f" p90 {percentile(local_starts, 90) * 1000:.0f} ms"
        ),
        ratio=median(ray_starts) / median(local_starts),
        target="none set",
        passed=True,
    )


if __name__ == "__main__":
    main()
