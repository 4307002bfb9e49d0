"""Scheduling latency: from a dependency's process exit to its dependent's spawn.

Target: median under 50 ms.

The plan is one chain ``W00 -> W01 -> ... -> WNN`` (each link one sample, run
one after another so nothing competes with it). Every workstream's tool is one
shell line that stamps the wall clock when it starts, writes a file (so there is
something to commit and push) and stamps the clock again just before it exits.
The latency of a link is the dependency's exit stamp to the dependent's
``AttemptStarted`` (taken right after its process was spawned).

On that path sit, besides the engine's own bookkeeping, the dependency's
finishing (commit, conflict forecast, push to the bare ``origin``) and the
dependent's worktree (fetch of the base, ``worktree add``, checkout, merge of
the dependency's branch). The breakdown prints each stretch from the event
timestamps.

Baseline, in the same run: a plain ``sh`` loop doing the least git a script
needs on the same path: after the tool exits, ``git add -A``, ``git commit``,
``git push`` (when there is an origin), then ``git worktree add -b`` of the next
branch from this one, then start the next tool.

    uv run python benchmarks/bench_scheduling.py [--links 20] [--no-origin]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import (
    machine_line,
    make_repo,
    median,
    percentile,
    report,
    run_engine,
    scratch,
    shell_ws,
    write_plan,
)

from mission_control.engine import events as ev
from mission_control.engine.states import WsState

TARGET_MS = 50.0


def _tool_line(ws_id: str, stamps: Path) -> str:
    return (
        f"date +%s.%N > {stamps}/{ws_id}.start; "
        f"echo {ws_id} > {ws_id}.txt; "
        f"date +%s.%N > {stamps}/{ws_id}.exit"
    )


def _stamp(stamps: Path, ws_id: str, kind: str) -> float:
    return float((stamps / f"{ws_id}.{kind}").read_text().strip())


@dataclass
class _Timeline:
    """When each thing happened to one workstream, from the engine's events."""

    preparing: float = 0.0
    spawned: float = 0.0
    ended: float = 0.0
    committed: float = 0.0
    forecast: float = 0.0
    pushed: float = 0.0
    succeeded: float = 0.0


def _timelines(events: list[ev.Event]) -> dict[str, _Timeline]:
    found: dict[str, _Timeline] = {}
    for e in events:
        task = getattr(e, "ws_id", None)
        if task is None:
            continue
        t = found.setdefault(task.split("::")[-1], _Timeline())
        match e:
            case ev.WorkstreamStateChanged(new=WsState.PREPARING, at=at):
                t.preparing = at
            case ev.WorkstreamStateChanged(new=WsState.SUCCEEDED, at=at):
                t.succeeded = at
            case ev.AttemptStarted(at=at):
                t.spawned = at
            case ev.AttemptEnded(at=at):
                t.ended = at
            case ev.FinishStepDone(step="commit", at=at):
                t.committed = at
            case ev.FinishStepDone(step="push", at=at):
                t.pushed = at
            case ev.ConflictsForecast(at=at):
                t.forecast = at
    return found


def _engine(folder: Path, links: int, origin: bool) -> tuple[list[float], dict[str, list[float]]]:
    repo = make_repo(folder / "engine", origin=origin)
    stamps = folder / "engine" / "stamps"
    stamps.mkdir()
    ids = [f"W{i:02d}" for i in range(links + 1)]
    workstreams = [
        shell_ws(ws_id, _tool_line(ws_id, stamps), deps=[ids[i - 1]] if i else None)
        for i, ws_id in enumerate(ids)
    ]
    plan = write_plan(folder / "engine", repo, workstreams, parallel=1, push=origin)
    result = run_engine(plan, folder / "engine" / "state", sample_interval=1.0)
    if not result.ok:
        raise RuntimeError("the chain did not succeed; see the state folder")
    tl = _timelines(result.events)
    latencies: list[float] = []
    parts: dict[str, list[float]] = {
        "exit -> AttemptEnded (exit noticed)": [],
        "AttemptEnded -> commit done": [],
        "commit -> forecast done": [],
        "forecast -> push done": [],
        "push -> SUCCEEDED (dependency done)": [],
        "SUCCEEDED -> dependent PREPARING (scheduler)": [],
        "PREPARING -> AttemptStarted (worktree, spawn)": [],
        "AttemptStarted -> tool's first line (exec)": [],
    }
    for dep, nxt in zip(ids, ids[1:], strict=False):
        d, n = tl[dep], tl[nxt]
        exited = _stamp(stamps, dep, "exit")
        latencies.append(n.spawned - exited)
        pushed = d.pushed if origin else d.forecast
        values = [
            d.ended - exited,
            d.committed - d.ended,
            d.forecast - d.committed,
            pushed - d.forecast,
            d.succeeded - pushed,
            n.preparing - d.succeeded,
            n.spawned - n.preparing,
            _stamp(stamps, nxt, "start") - n.spawned,
        ]
        for key, value in zip(parts, values, strict=True):
            parts[key].append(value)
    return latencies, parts


_LOOP = r"""
set -e
repo=$1; wt=$2; stamps=$3; links=$4; push=$5
prev=main
i=0
while [ "$i" -le "$links" ]; do
  id=W$(printf %02d "$i")
  git -C "$repo" worktree add -q -b "loop/$id" "$wt/$id" "$prev"
  date +%s.%N > "$stamps/$id.spawn"
  (cd "$wt/$id" && sh -c "date +%s.%N > $stamps/$id.start; echo $id > $id.txt; \
date +%s.%N > $stamps/$id.exit")
  git -C "$wt/$id" add -A
  git -C "$wt/$id" commit -q -m "$id"
  if [ "$push" = 1 ]; then git -C "$wt/$id" push -q origin "loop/$id"; fi
  prev="loop/$id"
  i=$((i + 1))
done
"""


def _loop(folder: Path, links: int, origin: bool) -> list[float]:
    repo = make_repo(folder / "loop", origin=origin)
    stamps = folder / "loop" / "stamps"
    stamps.mkdir()
    wt = folder / "loop" / "worktrees"
    wt.mkdir()
    args = [str(repo), str(wt), str(stamps), str(links), "1" if origin else "0"]
    # Its own session, like the engine's git calls and tools (scheduler autogroups).
    subprocess.run(["sh", "-c", _LOOP, "loop", *args], check=True, start_new_session=True)
    ids = [f"W{i:02d}" for i in range(links + 1)]
    return [
        _stamp(stamps, nxt, "spawn") - _stamp(stamps, dep, "exit")
        for dep, nxt in zip(ids, ids[1:], strict=False)
    ]


def _ms(values: list[float], pick: Callable[[list[float]], float]) -> str:
    return f"{pick(values) * 1000:7.1f} ms"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--links", type=int, default=20, help="dependency links measured")
    p.add_argument("--no-origin", action="store_true", help="no remote: nothing is pushed")
    args = p.parse_args()
    origin = not args.no_origin
    print(machine_line())
    print(
        f"chain of {args.links + 1} workstreams, {args.links} links;"
        f" {'push to a bare origin' if origin else 'no remote, no push'}"
    )
    with scratch("bench-scheduling-") as folder:
        loop = _loop(folder, args.links, origin)
        latencies, parts = _engine(folder, args.links, origin)

    print("\nbreakdown of the engine's path (median / p95):")
    for name, values in parts.items():
        print(
            f"  {name:<48} {_ms(values, median)} / {_ms(values, lambda v: percentile(v, 95))}"
        )
    print(
        f"\n  sh loop, exit -> next spawn (add, commit{', push' if origin else ''}, worktree add):"
        f" median {_ms(loop, median)}, p95 {_ms(loop, lambda v: percentile(v, 95))}"
    )
    med = median(latencies)
    base = median(loop)
    report(
        "scheduling latency, dependency exit -> dependent spawn",
        figure=f"median {med * 1000:.1f} ms, p95 {percentile(latencies, 95) * 1000:.1f} ms"
        f" over {len(latencies)} links",
        baseline=f"median {base * 1000:.1f} ms, p95 {percentile(loop, 95) * 1000:.1f} ms"
        " (sh loop doing the same git work)",
        ratio=med / base,
        target=f"median < {TARGET_MS:.0f} ms",
        passed=med * 1000 < TARGET_MS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
