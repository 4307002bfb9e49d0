"""``resume`` and ``attach``: continue a run, or open the app on one left running."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.branches import existing_branches
from ..engine.engine import RunOptions
from ..errors import SetupError
from ..git.claims import ROLE_BACKGROUND, holders, targets_of
from ..headless import EXIT_TAKEN_OVER
from ..plan.loader import load_plan_or_raise
from ..plan.model import Plan
from ..store.runs import RunRecord
from .common import find_run, is_terminal, open_store, require_terminal, state_dir_of
from .drive import PREDECESSOR_SECONDS, drive, wait_released


def _resume_target(args: argparse.Namespace) -> tuple[Plan, Path, RunRecord]:
    state_dir = state_dir_of(args)
    store = open_store(state_dir)
    record = find_run(store, args.run, plan=args.plan, resumable=args.run is None)
    plan = load_plan_or_raise(Path(record.plan_path))
    return plan, state_dir, record


def stored_options(record: RunRecord) -> RunOptions:
    """The options a run was started with, to continue it the same way."""
    options = record.options
    return RunOptions(
        phase=options.get("phase"),
        max_parallel=options.get("max_parallel"),
        keep_going=bool(options.get("keep_going", False)),
        run_id=record.run_id,
        backend=str(options.get("backend") or "local"),
        ray_address=options.get("ray_address"),
        existing_branches=existing_branches(options.get("existing_branches")),
    )


def cmd_resume(args: argparse.Namespace) -> int:
    plan, state_dir, record = _resume_target(args)
    return drive_again(plan, state_dir, record, args)


def drive_again(plan: Plan, state_dir: Path, record: RunRecord, args: argparse.Namespace) -> int:
    """Drive a recorded run on, as it was started, in the view ``args`` ask for."""
    return drive(
        plan,
        state_dir,
        stored_options(record),
        headless=args.headless or args.json or not is_terminal(),
        json_lines=args.json,
        theme=args.theme,
    )


def cmd_attach(args: argparse.Namespace) -> int:
    plan, state_dir, record = _resume_target(args)
    store = open_store(state_dir)
    if not args.force and store.owner_alive(record):
        _refuse_foreground(plan, record)
    require_terminal("attach", "`mission-control status` or `logs --follow` to watch the run")
    wait_released(store, record, timeout=PREDECESSOR_SECONDS)
    return drive(
        plan,
        state_dir,
        stored_options(record),
        headless=False,
        theme=args.theme,
    )


def _refuse_foreground(plan: Plan, record: RunRecord) -> None:
    """A run driven in the foreground (a terminal, a CI job) is not taken without --force."""
    roles = {h.role for h in holders(targets_of(plan.workstreams)) if h.run_id == record.run_id}
    if ROLE_BACKGROUND in roles:
        return
    raise SetupError(
        f"run {record.run_id} is driven in the foreground by mission-control pid"
        f" {record.owner_pid} (a `run` in a terminal or a CI job): wait for it to end, or"
        f" `mission-control attach {record.run_id} --force` takes it over (that one then"
        f" exits with code {EXIT_TAKEN_OVER})"
    )
