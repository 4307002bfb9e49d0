"""``runs``: the runs in a state folder, newest first, with what became of their work."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from ..headless import EXIT_OK
from ..report import format_table
from .common import open_store, state_dir_of


def cmd_runs(args: argparse.Namespace) -> int:
    state_dir = state_dir_of(args)
    store = open_store(state_dir)
    records = store.list_runs(args.limit)
    if args.plan is not None:
        plan_key = str(Path(args.plan).expanduser().resolve())
        records = [r for r in records if r.plan_path == plan_key]
    items = []
    for record in records:
        counts = Counter(ws.state.value for ws in store.workstreams(record.run_id))
        state = record.status
        if not record.finished:
            alive = store.owner_alive(record)
            state += f" (driven by pid {record.owner_pid})" if alive else " (no driver)"
        items.append((record, state, counts))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "run_id": r.run_id,
                        "plan": r.plan_name,
                        "plan_path": r.plan_path,
                        "started_at": r.created_at,
                        "finished_at": r.finished_at,
                        "status": r.status,
                        "state": state,
                        "workstreams": dict(counts),
                    }
                    for r, state, counts in items
                ],
                indent=2,
            )
        )
        return EXIT_OK
    if not items:
        print(f"no runs in {state_dir}: start one with `mission-control run PLAN`")
        return EXIT_OK
    rows = [("RUN", "PLAN", "STARTED", "STATE", "WORKSTREAMS")]
    for record, state, counts in items:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created_at))
        summary = ", ".join(f"{n} {what}" for what, n in counts.most_common()) or "-"
        rows.append((record.run_id, record.plan_name, started, state, summary))
    print("\n".join(format_table(rows)))
    return EXIT_OK
