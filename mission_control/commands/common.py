"""What the run commands share: where runs live, which run a command acts on, and
whether there is a terminal for the app."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import SetupError
from ..store.runs import RunRecord, RunStore
from . import STATE_DIR_NAME


def state_dir_of(args: argparse.Namespace) -> Path:
    explicit: Path | None = getattr(args, "state_dir", None)
    if explicit is not None:
        return explicit.expanduser().resolve()
    plan = getattr(args, "plan", None)
    if plan is not None:
        return Path(plan).expanduser().resolve().parent / STATE_DIR_NAME
    return Path.cwd() / STATE_DIR_NAME


def open_store(state_dir: Path) -> RunStore:
    if not state_dir.is_dir():
        raise SetupError(
            f"no runs in {state_dir}: pass --plan PLAN or --state-dir DIR, "
            "or start one with `mission-control run PLAN`"
        )
    return RunStore(state_dir)


def find_run(
    store: RunStore, run_id: str | None, *, plan: Path | None = None, resumable: bool = False
) -> RunRecord:
    """The run a command acts on: ``run_id``, else the latest (``resumable``: the one
    ``resume`` continues); with ``plan``, only a run of that plan (plans may share a folder)."""
    plan_key = None if plan is None else str(plan.expanduser().resolve())
    if run_id is not None:
        record = store.get_run(run_id)
        if record is None:
            known = ", ".join(r.run_id for r in store.list_runs(5)) or "none"
            raise SetupError(f"no run {run_id} in {store.db_path.parent}: recent runs: {known}")
        if plan_key is not None and record.plan_path != plan_key:
            raise SetupError(
                f"run {run_id} is a run of {record.plan_path}, not of {plan}: drop --plan,"
                f" or pick a run of that plan (`mission-control status --plan {plan}`)"
            )
        return record
    record = store.resumable_run(plan_key) if resumable else store.latest_run(plan_key)
    if record is None:
        of = "" if plan is None else f" of {plan}"
        latest = store.latest_run(plan_key) if resumable else None
        last = "" if latest is None else f" (the latest, {latest.run_id}, {latest.status})"
        what = "unfinished or stopped run" if resumable else "run"
        raise SetupError(
            f"no {what}{of} in {store.db_path.parent}{last}: start one with"
            f" `mission-control run {plan or 'PLAN'}`"
        )
    return record


WEB_DRIVER = "textual.drivers.web_driver:WebDriver"
"""The driver textual-serve starts the app with (``serve``): a browser is its terminal."""


def is_terminal() -> bool:
    if os.environ.get("TEXTUAL_DRIVER") == WEB_DRIVER:
        return True
    return sys.stdin.isatty() and sys.stdout.isatty()


def require_terminal(command: str, instead: str) -> None:
    """Refuse before anything is recorded: the app cannot run without a terminal."""
    if not is_terminal():
        raise SetupError(
            f"{command} opens the app, which needs a terminal (stdin and stdout are not one):"
            f" run it from a terminal, or use {instead}"
        )


def read_run(args: argparse.Namespace) -> tuple[RunStore, RunRecord]:
    store = open_store(state_dir_of(args))
    return store, find_run(store, args.run, plan=args.plan)
