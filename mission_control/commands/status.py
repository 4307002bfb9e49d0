"""``status`` and ``conflicts``: what a run did, read from the ledger's projection."""

from __future__ import annotations

import argparse
import dataclasses
import json

from ..engine.projection import snapshot_from_ledger, snapshot_json
from ..engine.snapshot import RunSnapshot, run_totals
from ..headless import EXIT_OK
from ..report import format_table, spent_text, waiting_lines
from .common import read_run


def cmd_status(args: argparse.Namespace) -> int:
    store, record = read_run(args)
    snapshot = snapshot_from_ledger(store, record.run_id)
    if args.json:
        data = snapshot_json(snapshot)
        data["landings"] = [
            {
                **dataclasses.asdict(landing),
                "merges": [dataclasses.asdict(m) for m in store.landing_merges(landing.landing_id)],
            }
            for landing in store.landings(record.run_id)
        ]
        print(json.dumps(data, indent=2, default=str))
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
    for task_id, other, files in forecast_pairs(snapshot):
        print(f"conflict forecast: {task_id} with {other}: {', '.join(files)}")
    agents = [
        (view.task_id, a)
        for view in snapshot.workstreams.values()
        for a in view.history
        if a.session_id or a.tokens.total or a.cost_usd is not None
    ]
    if agents:
        print()
        agent_rows = [("AGENT", "TRY", "SESSION", "MODEL", "TOKENS IN/OUT/CACHED", "COST", "DOING")]
        for task_id, a in agents:
            tokens = f"{a.tokens.input:,}/{a.tokens.output:,}/{a.tokens.cached:,}"
            cost = f"${a.cost_usd:.4f}" if a.cost_usd is not None else "-"
            doing = a.over_budget or a.needs_input or a.doing or ""
            agent_rows.append(
                (task_id, str(a.attempt), a.session_id or "-", a.model or "-", tokens, cost, doing)
            )
        print("\n".join(format_table(agent_rows)))
        tokens_total, cost_total = run_totals(snapshot)
        print(f"total: {spent_text(tokens_total, cost_total)}")
    for line in [*waiting_lines(snapshot), *snapshot.notes]:
        print(line)
    for landing in store.landings(record.run_id):
        merges = store.landing_merges(landing.landing_id)
        landed = sum(1 for m in merges if m.state in ("landed", "held"))
        pr = f", PR {landing.pr_url}" if landing.pr_url else ""
        stop = f": {landing.detail.splitlines()[0]}" if landing.status == "stopped" else ""
        print(
            f"landing {landing.into_branch}: {landing.status}, {landed} of {len(merges)}"
            f" branches{pr}{stop}"
        )
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
        for task_id, other, files in forecast_pairs(snapshot_from_ledger(store, record.run_id)):
            print(f"{task_id} conflicts with {other}: {', '.join(files)}")
    return EXIT_OK


def forecast_pairs(snapshot: RunSnapshot) -> list[tuple[str, str, tuple[str, ...]]]:
    """Each forecast conflict once: both branches record it, and the one later in the plan
    (the one that found it) names it."""
    seen: set[frozenset[str]] = set()
    pairs: list[tuple[str, str, tuple[str, ...]]] = []
    for view in reversed(list(snapshot.workstreams.values())):
        for other, files in view.conflicts:
            key = frozenset((view.task_id, other))
            if key not in seen:
                seen.add(key)
                pairs.append((view.task_id, other, files))
    return pairs[::-1]
