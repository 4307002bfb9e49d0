"""One projection of run state, built from the ledger.

The ledger is the source of truth; a ``RunSnapshot`` is what every view folds events
into. This module turns the one into the other, so that ``status``, ``status --json``
(a plain dump of the projection), ``attach`` and an engine resuming a run all start
from the same picture, instead of each converting rows by hand or replaying made-up
history.

Facts the ledger does not hold stay out: the plan's phase names, parallel limits and
timeouts come from ``plan`` when given (the engine has it), and what only a live
engine measures (CPU, memory, output idleness) keeps its resting value. The JSON dump
leaves both kinds out (``NOT_IN_LEDGER``).
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, Final

from ..plan.model import Plan
from ..store.runs import AttemptRecord, RunLedger, RunStore, WorkstreamRecord
from .events import Tokens, spent
from .scheduler import PhaseNode, PlanGraph, decide
from .snapshot import AttemptView, OwnerView, PhaseView, RunSnapshot, WorkstreamView, run_totals
from .states import DONE_FOR_DEPENDENTS, TERMINAL, WsState

_ENDED: Final = TERMINAL | {WsState.INTERRUPTED}
_NEW_ATTEMPT_COMING: Final = frozenset({WsState.QUEUED, WsState.PREPARING})

NOT_IN_LEDGER: Final = frozenset(
    {
        "phases",  # names and limits are the plan's
        "timeout_seconds",  # the plan's
        "stalled",  # what only a live engine measures
        "last_output_at",
        "cpu_percent",
        "rss_bytes",
    }
)
"""View fields ``snapshot_json`` leaves out: the ledger does not know them."""

_RUN_ALIASES: Final = {"created_at": "started_at"}
_WORKSTREAM_ALIASES: Final = {
    "worktree_path": "worktree",
    "attempts": "attempt",
    "head_commit": "head",
}
"""Earlier names of view fields in ``status --json``, kept for the scripts that read them."""


def snapshot_from_ledger(store: RunStore, run_id: str, plan: Plan | None = None) -> RunSnapshot:
    """The run as the ledger has it now, in the views' shape; ``KeyError`` if unknown.

    ``plan`` (the run's plan) adds what only the plan knows: phase names, parallel
    limits, timeouts.
    """
    ledger = store.read_run(run_id)
    if ledger is None:
        raise KeyError(f"no run {run_id}")
    run = ledger.run
    owner = None
    if run.owner_pid is not None:
        owner = OwnerView(
            pid=run.owner_pid,
            create_time=run.owner_create_time,
            since=run.owner_since,
            alive=store.owner_alive(run),
        )
    return _project(ledger, plan=plan, owner=owner, state_dir=str(store.state_dir))


def _project(
    ledger: RunLedger,
    *,
    plan: Plan | None = None,
    owner: OwnerView | None = None,
    state_dir: str | None = None,
) -> RunSnapshot:
    """The snapshot of one consistent read of the ledger (pure: no I/O)."""
    run = ledger.run
    history: dict[str, list[AttemptRecord]] = {}
    for a in ledger.attempts:
        history.setdefault(a.task_id, []).append(a)
    views = {
        ws.task_id: _workstream_view(ws, history.get(ws.task_id, []), plan)
        for ws in ledger.workstreams
    }
    finished = run.finished_at is not None
    return RunSnapshot(
        run_id=run.run_id,
        plan_path=run.plan_path,
        plan_name=run.plan_name,
        started_at=run.created_at,
        phases=_phases(ledger.workstreams, plan),
        workstreams=views,
        current_phase=_current_phase(ledger),
        finished=finished,
        ok=all(v.state in DONE_FOR_DEPENDENTS for v in views.values()) if finished else None,
        backend=str(run.options.get("backend") or "local"),
        status=run.status,
        finished_at=run.finished_at,
        owner=owner,
        state_dir=state_dir,
        notes=ledger.notes,
    )


def _workstream_view(
    ws: WorkstreamRecord, history: list[AttemptRecord], plan: Plan | None
) -> WorkstreamView:
    attempt = history[-1] if history else None
    view = WorkstreamView(
        task_id=ws.task_id,
        phase_id=ws.phase_id,
        ws_id=ws.ws_id,
        name=ws.name,
        tool=ws.tool,
        depends_on=ws.depends_on,
        timeout_seconds=_timeout(plan, ws.task_id),
        branch=ws.branch,
        worktree=ws.worktree_path,
        state=ws.state,
        detail=ws.detail,
        attempt=ws.attempts,
        head=ws.head_commit,
        files_changed=ws.files_changed,
        insertions=ws.insertions,
        deletions=ws.deletions,
        pr_url=ws.pr_url,
        conflicts=ws.conflicts,
        state_at=ws.state_at,
        base_commit=ws.base_commit,
    )
    if ws.state is WsState.PAUSED:
        view.paused_at = ws.state_at
    if attempt is not None:
        open_attempt = attempt.ended_at is None
        view.pid = attempt.pid if open_attempt else None
        view.log_path = attempt.log_path
        view.started_at = attempt.started_at
        view.paused_seconds = attempt.paused_seconds
        view.exit_code = attempt.exit_code
        view.signal = attempt.signal
        view.history = tuple(_attempt_view(a) for a in history)
        view.last_attempt = view.history[-1]
        view.session_id = attempt.session_id
        view.model = attempt.model
        view.doing = attempt.doing
        view.needs_input = attempt.needs_input
        view.tokens, view.cost_usd = spent((a.tokens, a.cost_usd) for a in view.history)
    view.ended_at = _ended_at(ws, attempt)
    return view


def _ended_at(ws: WorkstreamRecord, attempt: AttemptRecord | None) -> float | None:
    """When the workstream's work ended, as the views fold it from events."""
    if ws.state in _NEW_ATTEMPT_COMING:
        return None
    if attempt is not None and attempt.ended_at is not None:
        return attempt.ended_at
    return ws.state_at if ws.state in _ENDED else None


def _attempt_view(a: AttemptRecord) -> AttemptView:
    return AttemptView(
        attempt=a.attempt,
        pid=a.pid,
        status=a.status,
        started_at=a.started_at,
        ended_at=a.ended_at,
        exit_code=a.exit_code,
        signal=a.signal,
        paused_seconds=a.paused_seconds,
        log_path=a.log_path,
        worktree=a.worktree,
        branch=a.branch,
        base_commit=a.base_commit,
        head_commit=a.head_commit,
        argv=a.argv,
        env_names=a.env_names,
        session_id=a.session_id,
        model=a.model,
        tokens=Tokens(a.input_tokens, a.output_tokens, a.cached_tokens),
        cost_usd=a.cost_usd,
        doing=a.doing,
        needs_input=a.needs_input,
        over_budget=a.over_budget,
    )


def _timeout(plan: Plan | None, task_id: str) -> float:
    if plan is None:
        return 0.0
    try:
        return plan.workstream(task_id).timeout_seconds
    except KeyError:  # the plan changed since the run started
        return 0.0


def _phases(workstreams: tuple[WorkstreamRecord, ...], plan: Plan | None) -> list[PhaseView]:
    """The run's phases in plan order, each with its workstreams in the run."""
    task_ids: dict[str, list[str]] = {}
    for ws in workstreams:
        task_ids.setdefault(ws.phase_id, []).append(ws.task_id)
    phases = []
    for phase_id, ids in task_ids.items():
        name, limit = phase_id, 0
        if plan is not None:
            try:
                phase = plan.phase(phase_id)
                name, limit = phase.name, phase.max_parallel_workstreams
            except KeyError:  # the plan changed since the run started
                pass
        phases.append(PhaseView(phase_id, name, limit, tuple(ids)))
    return phases


def _current_phase(ledger: RunLedger) -> str | None:
    """The phase running now, as the scheduler decides it from the recorded states
    (None once every phase is done, or a failure stops the later ones)."""
    phases: dict[str, list[str]] = {}
    for ws in ledger.workstreams:
        phases.setdefault(ws.phase_id, []).append(ws.task_id)
    graph = PlanGraph(
        tuple(PhaseNode(phase_id, 1, tuple(ids)) for phase_id, ids in phases.items()),
        {ws.task_id: ws.depends_on for ws in ledger.workstreams},
    )
    states = {ws.task_id: ws.state for ws in ledger.workstreams}
    keep_going = bool(ledger.run.options.get("keep_going", False))
    return decide(graph, states, keep_going=keep_going).phase


def snapshot_json(snapshot: RunSnapshot) -> dict[str, Any]:
    """``status --json``: the projection as plain data, keys named as the views' fields
    (and their earlier names); times are Unix seconds."""
    data = _fields(snapshot, _RUN_ALIASES)
    data["workstreams"] = [
        _fields(view, _WORKSTREAM_ALIASES) for view in snapshot.workstreams.values()
    ]
    tokens, cost = run_totals(snapshot)
    data["totals"] = {"tokens": _plain("tokens", tokens), "cost_usd": cost}
    return data


def _fields(obj: Any, aliases: dict[str, str]) -> dict[str, Any]:
    data = {
        f.name: _plain(f.name, getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if f.name not in NOT_IN_LEDGER
    }
    for old, new in aliases.items():
        if new in data:
            data[old] = data[new]
    return data


def _plain(name: str, value: Any) -> Any:
    if name == "conflicts":
        return [{"with": other, "files": list(files)} for other, files in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain("", v) for v in value]
    return value
