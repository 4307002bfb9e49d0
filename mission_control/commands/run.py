"""``run``, ``tui`` and ``demo``: start a plan (or print what it would do with ``--dry-run``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import tempfile
from pathlib import Path

from ..engine.branches import ExistingBranches, commits, existing_branches, refuse_earlier_work
from ..engine.engine import RunOptions
from ..engine.tools import render_command
from ..errors import SetupError
from ..git.worktrees import OLD_REF_PREFIX, EarlierWork, earlier_work
from ..headless import EXIT_OK
from ..plan.loader import load_plan_or_raise
from ..plan.model import BaseMode, Plan, Workstream
from ..report import format_duration
from ..store.runs import RunStore, new_run_id
from . import STATE_DIR_NAME
from .common import is_terminal, require_terminal, state_dir_of
from .drive import claim_branches, drive, refuse_live_owner, spawn_driver


def _run_options(args: argparse.Namespace, run_id: str | None) -> RunOptions:
    if args.max_parallel is not None and args.max_parallel < 1:
        raise SetupError(f"--max-parallel {args.max_parallel}: give a number of at least 1")
    return dataclasses.replace(
        _backend_options(args),
        phase=args.phase,
        max_parallel=args.max_parallel,
        keep_going=args.keep_going,
        run_id=run_id,
        existing_branches=existing_branches(args.existing_branches),
    )


def _backend_options(args: argparse.Namespace) -> RunOptions:
    if args.ray_address is not None and args.backend != "ray":
        raise SetupError("--ray-address is for the ray backend: add --backend ray")
    return RunOptions(backend=args.backend, ray_address=args.ray_address)


def _check_phase(plan: Plan, phase: str | None) -> None:
    if phase is not None and phase not in {p.id for p in plan.phases}:
        known = ", ".join(p.id for p in plan.phases)
        raise SetupError(f"--phase {phase}: no such phase in {plan.path.name} (phases: {known})")


def cmd_run(args: argparse.Namespace) -> int:
    plan = load_plan_or_raise(args.plan)
    _check_phase(plan, args.phase)
    state_dir = state_dir_of(args)
    if args.dry_run:
        return _dry_run(plan, args.phase, existing_branches(args.existing_branches))
    run_id: str | None = args.run_id
    if args.resume:
        store = RunStore(state_dir)
        record = store.resumable_run(plan.path)
        if record is None:
            print(
                f"no unfinished or stopped run of {plan.path.name}: starting a new one",
                file=sys.stderr,
            )
        else:
            run_id = record.run_id
    if args.detach:
        if run_id is None and args.existing_branches == "refuse":  # say it here, not in a log
            refuse_earlier_work(_in_scope(plan, args.phase))
        return _detach(plan, state_dir, _run_options(args, run_id), resume=run_id is not None)
    headless = args.headless or args.json or not is_terminal()
    return drive(
        plan,
        state_dir,
        _run_options(args, run_id),
        headless=headless,
        json_lines=args.json,
        theme=args.theme,
    )


def _detach(plan: Plan, state_dir: Path, options: RunOptions, *, resume: bool) -> int:
    """Start the run's driver in the background, its branches claimed here first."""
    if options.run_id is not None:
        refuse_live_owner(state_dir, options.run_id)
    run_id = options.run_id or new_run_id()
    options = dataclasses.replace(options, run_id=run_id)
    with claim_branches(plan, state_dir, options, background=True) as claims:
        log = spawn_driver(
            state_dir, run_id, plan=None if resume else plan.path, options=options, claims=claims
        )
    print(f"run {run_id} started in the background; output: {log}")
    print(f"  mission-control attach {run_id} --state-dir {state_dir}")
    return EXIT_OK


def cmd_tui(args: argparse.Namespace) -> int:
    # The plan's own mistakes first: they are what the user came to fix.
    plan = load_plan_or_raise(args.plan)
    _check_phase(plan, args.phase)
    require_terminal("tui", f"`mission-control run {args.plan} --headless`")
    return drive(
        plan, state_dir_of(args), _run_options(args, None), headless=False, theme=args.theme
    )


def _dry_run(plan: Plan, phase: str | None, mode: ExistingBranches) -> int:
    from ..git.remotes import has_remote

    remotes: dict[tuple[Path, str], bool] = {}
    stopping: list[str] = []
    for p in plan.phases:
        if phase is not None and p.id != phase:
            continue
        print(f"phase {p.id} ({p.name}), at most {p.max_parallel_workstreams} at once")
        for ws in p.workstreams:
            key = (ws.repo, ws.remote)
            if key not in remotes:
                remotes[key] = has_remote(ws.repo, ws.remote)
            start = f"{ws.remote}/{ws.base_branch}" if remotes[key] else ws.base_branch
            with tempfile.TemporaryDirectory() as scratch:
                command = render_command(
                    plan.tools[ws.tool],
                    ws,
                    run_id="RUN",
                    attempt=1,
                    attempt_dir=Path(scratch),
                    worktree=ws.worktree_path,
                )
                argv = shlex.join(command.argv).replace(scratch, "<attempt-dir>")
            deps = ", ".join(ws.depends_on) if ws.base is not BaseMode.BRANCH else ""
            deps = deps or "none"
            work = earlier_work(ws)
            if work is not None and work.commits and mode == "refuse":
                stopping.append(ws.branch)
            where = ws.worktree_path
            print(f"  {ws.task_id}  {ws.name}")
            print(f"    branch   {_dry_branch(ws.branch, start, work, mode)}, merging: {deps}")
            print(f"    worktree {where}{' (exists)' if where.exists() else ''}")
            print(f"    argv     {argv}")
            if command.stdin_path is not None:
                print("    stdin    the prompt")
            print(f"    timeout  {format_duration(ws.timeout_seconds)}")
    if stopping:
        print(
            f"a new run stops before it starts: {', '.join(stopping)} hold work of earlier"
            " runs; --continue-branches builds on it, --fresh starts from the base"
        )
    return EXIT_OK


def _dry_branch(branch: str, start: str, work: EarlierWork | None, mode: ExistingBranches) -> str:
    """What a new run would do with ``branch``, in the words of the dry run."""
    if work is None:
        return f"{branch} from {start}"
    if not work.commits:
        done = f"started again from {start}" if mode == "fresh" else "re-attached"
        return f"{branch} exists at {work.tip[:10]}, nothing beyond {work.base}: {done}"
    if mode == "fresh":
        return (
            f"{branch} exists: started again from {start}"
            f" (its tip {work.tip[:10]} kept under {OLD_REF_PREFIX}{branch}/)"
        )
    held = f"{branch} exists with {commits(work.commits)} not on {work.base}"
    return f"{held}: built on" if mode == "continue" else f"{held}: the run stops (see below)"


def _in_scope(plan: Plan, phase: str | None) -> list[Workstream]:
    return [ws for p in plan.phases if phase is None or p.id == phase for ws in p.workstreams]


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.scaffold import create_demo

    folder = args.dir or Path(tempfile.mkdtemp(prefix="mission-control-demo-"))
    demo = create_demo(folder, speed=args.speed)
    os.environ["PATH"] = f"{demo.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    print(f"demo in {demo.folder}: plan {demo.plan_path}")
    plan = load_plan_or_raise(demo.plan_path)
    state_dir = demo.folder / STATE_DIR_NAME
    code = drive(
        plan,
        state_dir,
        _backend_options(args),
        headless=args.headless or not is_terminal(),
        theme=args.theme,
    )
    print(f"the demo's repository, worktrees and run state are in {demo.folder}")
    print(f"  mission-control status --state-dir {state_dir}")
    return code
