"""``status`` and ``conflicts``: what a run did, read from the ledger's projection."""

from __future__ import annotations

import argparse
import json

from ..engine.projection import snapshot_from_ledger, snapshot_json
from ..headless import EXIT_OK
from ..report import format_table
from .common import read_run


def cmd_status(args: argparse.Namespace) -> int:
    store, record = read_run(args)
    snapshot = snapshot_from_ledger(store, record.run_id)
    if args.json:
        print(json.dumps(snapshot_json(snapshot), indent=2, default=str))
        return EXIT_OK
    owner = snapshot.owner
    driven = f", driven by pid {owner.pid}" if owner is not None and owner.alive else ""
    if not driven and not snapshot.finished:  # its driver died (crash, full disk, kill)
        driven = f", no driver: `mission-control resume {snapshot.run_id}` continues it"
    print(f"run {snapshot.run_id} of {snapshot.plan_name} ({snapshot.status}{driven})")
    rows = [("WORKSTREAM", "STATE", "TRY", "PORTS", "BRANCH", "CHANGES", "PR", "DETAIL")]
    for view in snapshot.workstreams.values():
        changes = f"+{view.insertions} -{view.deletions}" if view.files_changed else "-"
        rows.append(
            (
                view.task_id,
                view.state.value,
                str(view.attempt),
                ",".join(map(str, view.ports)) or "-",
                view.branch,
                changes,
                view.pr_url or "-",
                view.detail,
            )
        )
    print("\n".join(format_table(rows)))
    for view in snapshot.workstreams.values():
        for other, files in view.conflicts:
            print(f"conflict forecast: {view.task_id} with {other}: {', '.join(files)}")
    return EXIT_OK


def cmd_conflicts(args: argparse.Namespace) -> int:
    store, record = read_run(args)
    pairs = [
        {"workstream": view.task_id, "with": other, "files": list(files)}
        for view in snapshot_from_ledger(store, record.run_id).workstreams.values()
        for other, files in view.conflicts
    ]
    if args.json:
        print(json.dumps(pairs, indent=2))
    elif not pairs:
        print(f"run {record.run_id}: no conflicts forecast")
    else:
        for pair in pairs:
            print(f"{pair['workstream']} conflicts with {pair['with']}: {', '.join(pair['files'])}")
    return EXIT_OK
