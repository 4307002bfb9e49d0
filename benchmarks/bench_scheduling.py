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
timestamps, and how many git commands ran in it: a second run of the same chain
with git's own trace (``GIT_TRACE2_EVENT``) counts them, so the timings of the
first run carry no tracing cost. The count does not depend on the machine's
load; the milliseconds do, a lot.

Baseline, in the same run: a plain ``sh`` loop doing the least git a script
needs on the same path: after the tool exits, ``git add -A``, ``git commit``,
``git push`` (when there is an origin), then ``git worktree add -b`` of the next
branch from this one, then start the next tool.

    uv run python benchmarks/bench_scheduling.py [--links 20] [--no-origin]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
        task = getattr(e, "task_id", None)
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


_PATH = (
    "exit -> AttemptEnded (exit noticed)",
    "AttemptEnded -> commit made",
    "commit made -> dependent PREPARING",
    "PREPARING -> AttemptStarted (worktree, spawn)",
)
"""The stretches from the dependency's exit to the dependent's spawn, one after another."""

_BESIDE = (
    "dependency: commit made -> push done",
    "dependency: push done -> forecast done",
    "dependent: AttemptStarted -> tool's first line",
)
"""The rest of the dependency's finishing, and the dependent's exec, for the record."""


@dataclass
class _Chain:
    """One run of the chain: per link, where each stretch began and ended."""

    latencies: list[float]
    links: list[dict[str, tuple[float, float]]]
    waited: list[bool]
    """Per link: the dependent waited for the dependency's push (SUCCEEDED), not only its commit."""
    own: list[float]
    """Per link: the engine's own share, noticing the exit plus starting the dependent once
    what it waits for is there (no git in either)."""

    def durations(self, names: tuple[str, ...]) -> dict[str, list[float]]:
        return {name: [link[name][1] - link[name][0] for link in self.links] for name in names}


def _engine(folder: Path, links: int, origin: bool, trace: Path | None = None) -> _Chain:
    repo = make_repo(folder, origin=origin)
    stamps = folder / "stamps"
    stamps.mkdir()
    ids = [f"W{i:02d}" for i in range(links + 1)]
    workstreams = [
        shell_ws(ws_id, _tool_line(ws_id, stamps), deps=[ids[i - 1]] if i else None)
        for i, ws_id in enumerate(ids)
    ]
    plan = write_plan(folder, repo, workstreams, parallel=1, push=origin)
    if trace is not None:
        os.environ["GIT_TRACE2_EVENT"] = str(trace)
    try:
        result = run_engine(plan, folder / "state", sample_interval=1.0)
    finally:
        os.environ.pop("GIT_TRACE2_EVENT", None)
    if not result.ok:
        raise RuntimeError(f"the chain did not succeed: {result.failures()}")
    tl = _timelines(result.events)
    chain = _Chain([], [], [], [])
    for dep, nxt in itertools.pairwise(ids):
        d, n = tl[dep], tl[nxt]
        exited = _stamp(stamps, dep, "exit")
        chain.latencies.append(n.spawned - exited)
        # Dependents hear of the commit as soon as it is made, before its diff is read
        # and its step logged: whichever came first marks the commit.
        made = min(d.committed, n.preparing)
        pushed = d.pushed if origin else made
        chain.links.append(
            {
                _PATH[0]: (exited, d.ended),
                _PATH[1]: (d.ended, made),
                _PATH[2]: (made, n.preparing),
                _PATH[3]: (n.preparing, n.spawned),
                _BESIDE[0]: (made, pushed),
                _BESIDE[1]: (pushed, d.forecast),
                _BESIDE[2]: (n.spawned, _stamp(stamps, nxt, "start")),
            }
        )
        waited = d.succeeded <= n.preparing
        chain.waited.append(waited)
        gate = d.succeeded if waited else made
        chain.own.append((d.ended - exited) + (n.preparing - gate))
    return chain


def _git_starts(trace: Path) -> list[float]:
    """When each git command (not the helpers it runs itself) started, from git's trace2."""
    starts: list[float] = []
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "start" and "/" not in event.get("sid", "/"):
            starts.append(datetime.fromisoformat(event["time"]).timestamp())
    return starts


def _git_counts(chain: _Chain, starts: list[float]) -> dict[str, list[int]]:
    """How many git commands started within each stretch of each link."""
    counts: dict[str, list[int]] = {name: [] for name in (*_PATH, *_BESIDE)}
    for link in chain.links:
        for name, (begin, end) in link.items():
            counts[name].append(sum(1 for t in starts if begin <= t < end))
    return counts


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
    repo = make_repo(folder, origin=origin)
    stamps = folder / "stamps"
    stamps.mkdir()
    wt = folder / "worktrees"
    wt.mkdir()
    args = [str(repo), str(wt), str(stamps), str(links), "1" if origin else "0"]
    # Its own session, like the engine's git calls and tools (scheduler autogroups).
    subprocess.run(["sh", "-c", _LOOP, "loop", *args], check=True, start_new_session=True)
    ids = [f"W{i:02d}" for i in range(links + 1)]
    return [
        _stamp(stamps, nxt, "spawn") - _stamp(stamps, dep, "exit")
        for dep, nxt in itertools.pairwise(ids)
    ]


def _ms(values: list[float], pick: Callable[[list[float]], float]) -> str:
    return f"{pick(values) * 1000:7.1f} ms"


def _p95(values: list[float]) -> float:
    return percentile(values, 95)


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
        loop = _loop(folder / "loop", args.links, origin)
        chain = _engine(folder / "engine", args.links, origin)
        # A second run with git's trace2 on, only to count git commands per stretch (the
        # trace costs a little per command, so the timings come from the first run).
        trace = folder / "trace2.json"
        traced = _engine(folder / "traced", args.links, origin, trace)
        counts = _git_counts(traced, _git_starts(trace))

    def row(name: str, values: list[float], git: list[int] | None) -> None:
        shown = f"   {median([float(c) for c in git]):4.0f} git" if git is not None else ""
        print(f"  {name:<46} {_ms(values, median)} / {_ms(values, _p95)}{shown}")

    print("\nthe path, stretch by stretch (median / p95; git commands started in it, median):")
    for name, values in chain.durations(_PATH).items():
        row(name, values, counts[name])
    total = [float(sum(c)) for c in zip(*(counts[n] for n in _PATH), strict=True)]
    row("whole path", chain.latencies, [int(t) for t in total])
    row("of which the engine alone (no git)", chain.own, None)
    waited = sum(chain.waited) > len(chain.waited) / 2
    print(
        "\nthe rest of the dependency's finishing ("
        + (
            "the dependent waited for it: it is inside 'commit made -> dependent PREPARING'"
            if waited
            else "beside the path: the dependent prepares once the commit is made and its"
            " tool starts once the push is done, so the push runs alongside its preparation"
            " (its git commands count in both windows); the forecast starts after the push"
        )
        + "):"
    )
    for name, values in chain.durations(_BESIDE).items():
        row(name, values, counts[name])
    steps = "worktree add, add, commit" + (", push" if origin else "")
    print(
        f"\n  sh loop, exit -> next spawn ({steps}):"
        f" median {_ms(loop, median)}, p95 {_ms(loop, _p95)}, {3 + origin} git"
    )
    med = median(chain.latencies)
    base = median(loop)
    report(
        "scheduling latency, dependency exit -> dependent spawn",
        figure=f"median {med * 1000:.1f} ms, p95 {_p95(chain.latencies) * 1000:.1f} ms"
        f" over {len(chain.latencies)} links",
        baseline=f"median {base * 1000:.1f} ms, p95 {_p95(loop) * 1000:.1f} ms"
        " (sh loop doing the least git on the same path)",
        ratio=med / base,
        target=f"median < {TARGET_MS:.0f} ms",
        passed=med * 1000 < TARGET_MS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
