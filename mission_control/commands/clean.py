"""``clean``: remove the worktrees (and branches) of a run's finished workstreams."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SetupError
from ..headless import EXIT_FAILED, EXIT_OK
from ..plan.loader import load_plan_or_raise
from .common import read_run


def cmd_clean(args: argparse.Namespace) -> int:
    from ..engine.states import TERMINAL
    from ..engine.worktree_setup import run_teardown
    from ..git.landing import remove_landing_worktree
    from ..git.worktrees import remove_worktree

    store, record = read_run(args)
    if store.owner_alive(record):
        raise SetupError(
            f"run {record.run_id} is still driven by pid {record.owner_pid}: wait for it or stop it"
        )
    plan = load_plan_or_raise(Path(record.plan_path))
    remote_run = (record.options.get("backend") or "local") != "local"
    refused = 0
    for ws_record in store.workstreams(record.run_id):
        if ws_record.state not in TERMINAL:
            print(f"{ws_record.task_id}: {ws_record.state.value}, left alone")
            continue
        try:
            ws = plan.workstream(ws_record.task_id)
        except KeyError:
            continue
        worktree = Path(ws_record.worktree_path)
        if ws.teardown and not remote_run and worktree.is_dir():
            tried = store.attempts(record.run_id, ws_record.task_id)
            failures = run_teardown(ws, worktree, tried[-1].ports if tried else ())
            for failure in failures:
                print(f"{ws_record.task_id}: {failure} (the worktree is removed all the same)")
            if not failures:
                print(f"{ws_record.task_id}: teardown ok")
        result = remove_worktree(
            ws.repo,
            Path(ws_record.worktree_path),
            ws_record.branch,
            delete_branch=args.branches,
            force=args.force,
            remote=ws.remote,
            base_branch=ws.base_branch,
        )
        for reason in result.refusals:
            refused += 1
            print(f"{ws_record.task_id}: refused: {reason}")
        if remote_run:
            # Not this command's doing: a node removes its worktree when the attempt ends.
            tried = store.attempts(record.run_id, ws_record.task_id)
            where = f" ({tried[-1].worktree})" if tried else ""
            print(
                f"{ws_record.task_id}: its worktree was on a cluster node{where}, which removes"
                " it when the attempt ends: nothing to remove here"
            )
        elif result.worktree_removed:
            print(f"{ws_record.task_id}: removed {ws_record.worktree_path}")
        if result.branch_deleted:
            print(f"{ws_record.task_id}: deleted branch {ws_record.branch}")
    for landing in store.landings(record.run_id):
        if landing.status != "landed":  # a stopped one may hold a conflict being resolved
            print(f"landing {landing.into_branch}: {landing.status}, its worktree left alone")
            continue
        if remove_landing_worktree(Path(landing.repo), Path(landing.worktree)):
            print(f"landing {landing.into_branch}: removed {landing.worktree}")
    if refused:
        print("some were refused: commit or push their work, or pass --force")
        return EXIT_FAILED
    return EXIT_OK
