"""``land``: merge a phase's (or a run's) succeeded branches into one integration branch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..headless import EXIT_FAILED, EXIT_OK
from ..plan.loader import load_plan_or_raise
from .common import read_run


def cmd_land(args: argparse.Namespace) -> int:
    from ..engine.landing import LandingRequest, LandingStep, land, start_point
    from ..engine.landing_order import expected_conflicts, landing_scope
    from ..engine.landing_resolve import check_resolver

    store, record = read_run(args)
    plan = load_plan_or_raise(Path(record.plan_path))
    scope = landing_scope(
        plan,
        store,
        record.run_id,
        phase_id=args.phase,
        into=args.into,
        state_dir=Path(store.db_path).parent,
    )
    if args.resolve is not None:
        check_resolver(plan, args.resolve)
    checks = ", ".join(c.name for c in scope.checks) or "none configured"
    if args.dry_run:
        found = store.find_landing(scope.run_id, scope.scope, scope.into)
        base_ref = found.base_ref if found is not None else start_point(scope)[0]
        forecast = expected_conflicts(scope, base_ref)
        states: dict[str, str] = {}
        if found is not None:  # a landing run before: where each branch stands
            states = {m.task_id: m.state for m in store.landing_merges(found.landing_id)}
        if args.json:
            _print(
                {
                    "event": "dry_run",
                    "run_id": scope.run_id,
                    "into": scope.into,
                    "from": base_ref,
                    "checks": [c.name for c in scope.checks],
                    "order": [
                        {
                            "task_id": ws.task_id,
                            "branch": ws.branch,
                            "state": states.get(ws.task_id, "pending"),
                            "conflicts": [
                                {"with": other, "files": files}
                                for other, files in forecast[ws.task_id]
                            ],
                        }
                        for ws in scope.order
                    ],
                    "left_out": [{"task_id": t, "state": s} for t, s in scope.left_out],
                }
            )
            return EXIT_OK
        print(
            f"land {scope.what} of run {scope.run_id} into {scope.into} (from {_short(base_ref)});"
            f" checks {args.checks}: {checks}"
        )
        for number, ws in enumerate(scope.order, start=1):
            state = states.get(ws.task_id, "pending")
            print(
                f"  {number}. {ws.task_id}  {ws.branch}"
                + ("" if state == "pending" else f"  ({state})")
            )
            for other, files in forecast[ws.task_id]:
                print(f"       expected conflict with {other} in {', '.join(files)}")
        _print_left_out(scope.left_out)
        print("dry run: nothing merged")
        return EXIT_OK

    def report(step: LandingStep) -> None:
        if args.json:
            _print(step.json())
            return
        mark = "ok" if step.ok else "FAILED"
        if step.kind == "stopped":
            print(f"mission-control: {step.text}", file=sys.stderr)
            return
        print(f"{step.kind} {mark}: {step.text}")
        if step.kind == "check" and not step.ok:
            for line in step.tail:
                print(f"    {line}")

    if not args.json:
        print(
            f"landing {scope.what} of run {scope.run_id} into {scope.into}"
            f" ({len(scope.order)} branches; checks {args.checks}: {checks})"
        )
        print(f"  worktree {scope.worktree}")
    request = LandingRequest(
        plan=plan,
        scope=scope,
        checks=args.checks,
        resolve_tool=args.resolve,
        close_prs=args.close_prs,
    )
    result = land(request, store, report)
    if args.json:
        _print(
            {
                "event": "landing_finished" if result.ok else "landing_stopped",
                "ok": result.ok,
                "into": scope.into,
                "head": result.head,
                "pr_url": result.pr_url,
                "landed": list(result.landed),
                "left_out": [{"task_id": t, "state": s} for t, s in scope.left_out],
                "detail": result.detail,
            }
        )
    elif result.ok:
        print(f"landed: {result.detail}" + (f"; PR {result.pr_url}" if result.pr_url else ""))
        _print_left_out(scope.left_out)
    return EXIT_OK if result.ok else EXIT_FAILED


def _short(ref: str) -> str:
    for prefix in ("refs/remotes/", "refs/heads/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def _print_left_out(left_out: tuple[tuple[str, str], ...]) -> None:
    if left_out:
        print("not landed: " + ", ".join(f"{task} ({state})" for task, state in left_out))


def _print(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)
