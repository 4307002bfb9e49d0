"""The scheduler: states and limits in, decisions out; no I/O, no clock.

Shaped like graphlib's ``get_ready()``/``done()``: the engine calls ``decide``
whenever something changes (a process exit, a command) and acts on the answer,
so dependents start the moment their last dependency finishes, with no polling.

Phases run in order: a phase starts once every workstream of the one before it
is finished. Without ``keep_going`` a phase with a failure lets its own
independent workstreams finish, but no later phase starts. A phase with
``land: auto`` whose workstreams all succeeded is finished only once it has
landed: the decision names it (``land``) and nothing after it starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain, compress, repeat

from ..plan.model import Plan
from .states import ACTIVE, DONE_FOR_DEPENDENTS, FAILED_STATES, TERMINAL, WsState

_WAITING = frozenset({WsState.PENDING, WsState.QUEUED, WsState.INTERRUPTED})
_UNQUEUED = _WAITING - {WsState.QUEUED}


@dataclass(frozen=True, slots=True)
class PhaseNode:
    phase_id: str
    max_parallel: int
    task_ids: tuple[str, ...]
    auto_land: bool = False


@dataclass(frozen=True, slots=True)
class PlanGraph:
    """The parts of a plan the scheduler needs, in plan order."""

    phases: tuple[PhaseNode, ...]
    deps: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_plan(cls, plan: Plan, only_phase: str | None = None) -> PlanGraph:
        phases = tuple(
            PhaseNode(
                p.id,
                p.max_parallel_workstreams,
                tuple(ws.task_id for ws in p.workstreams),
                p.land_auto,
            )
            for p in plan.phases
            if only_phase is None or p.id == only_phase
        )
        deps = {ws.task_id: tuple(ws.depends_on) for ws in plan.workstreams}
        return cls(phases, deps)

    def dependents(self, task_id: str) -> set[str]:
        """Every workstream that waits on ``task_id``, directly or not."""
        found: set[str] = set()
        frontier = [task_id]
        while frontier:
            current = frontier.pop()
            for other, deps in self.deps.items():
                if current in deps and other not in found:
                    found.add(other)
                    frontier.append(other)
        return found


@dataclass(frozen=True, slots=True)
class Decision:
    start: tuple[str, ...] = ()
    """Ready and given a slot: start these now, in this order."""
    queue: tuple[str, ...] = ()
    """Ready but waiting for a slot."""
    block: Mapping[str, str] = field(default_factory=dict)
    """Workstream -> the dependency that did not succeed."""
    phase: str | None = None
    """The phase now running (None once all are done or stopped)."""
    finished: bool = False
    """Nothing is active and nothing more will start."""
    land: str | None = None
    """A ``land: auto`` phase whose workstreams all succeeded: land it before going on."""


def decide(
    graph: PlanGraph,
    states: Mapping[str, WsState],
    *,
    max_parallel: int | None = None,
    keep_going: bool = False,
    ready_for_dependents: frozenset[str] = frozenset(),
    landed: frozenset[str] = frozenset(),
    landing_failed: frozenset[str] = frozenset(),
) -> Decision:
    """What to do now. ``ready_for_dependents``: still finishing, but their work is
    checked and committed, so their dependents may start preparing (the engine holds
    a dependent's tool until every dependency has succeeded). ``landed`` and
    ``landing_failed``: the ``land: auto`` phases whose landing is done, or stopped
    (then nothing after it starts)."""
    local = dict(states)
    block = _propagate_blocks(graph, local)

    # Each pass over the workstreams below is made of set and map operations, so that a
    # decision stays cheap in a plan of hundreds of workstreams: it is made at every wake.
    # Past its checks and commit, a finishing workstream only pushes and opens its
    # pull request: it no longer holds one of the agents' parallel slots.
    holding = set(compress(local, map(ACTIVE.__contains__, local.values())))
    holding -= ready_for_dependents
    active_total = len(holding)
    phase_id: str | None = None
    start: list[str] = []
    queue: list[str] = []
    land: str | None = None
    pending = repeat(WsState.PENDING)
    for index, phase in enumerate(graph.phases):
        ids = phase.task_ids
        if TERMINAL.issuperset(map(local.get, ids, pending)):
            if not phase.auto_land or phase.phase_id in landed:
                continue
            if phase.phase_id in landing_failed:
                break
            if all(local.get(t) is WsState.SUCCEEDED for t in ids):
                phase_id = land = phase.phase_id
                break
            continue
        earlier = chain.from_iterable(p.task_ids for p in graph.phases[:index])
        earlier_failed = not FAILED_STATES.isdisjoint(map(local.get, earlier))
        if earlier_failed and not keep_going:
            break
        phase_id = phase.phase_id
        active_here = len(holding.intersection(ids))
        slots = phase.max_parallel - active_here
        if max_parallel is not None:
            slots = min(slots, max_parallel - active_total)
        waiting = list(compress(ids, map(_WAITING.__contains__, map(local.get, ids, pending))))

        def ready(task_id: str) -> bool:
            return all(
                local.get(d) in DONE_FOR_DEPENDENTS or d in ready_for_dependents
                for d in graph.deps.get(task_id, ())
            )

        looked = 0
        while slots > 0 and looked < len(waiting):
            task_id = waiting[looked]
            looked += 1
            if ready(task_id):
                start.append(task_id)
                slots -= 1
        # The rest wait for a slot; those queued before are queued still.
        rest = waiting[looked:]
        unqueued = map(_UNQUEUED.__contains__, map(local.get, rest, pending))
        queue += filter(ready, compress(rest, unqueued))
        break

    finished = active_total == 0 and not start and land is None
    return Decision(tuple(start), tuple(queue), block, phase_id, finished, land)


def _propagate_blocks(graph: PlanGraph, local: dict[str, WsState]) -> dict[str, str]:
    """Mark (in ``local``) every waiting workstream behind a failed dependency, transitively."""
    block: dict[str, str] = {}
    if FAILED_STATES.isdisjoint(local.values()):
        return block  # the usual case, told at once
    changed = True
    while changed:
        changed = False
        for task_id, deps in graph.deps.items():
            if local.get(task_id, WsState.PENDING) not in _WAITING:
                continue
            for dep in deps:
                if local.get(dep) in FAILED_STATES:
                    local[task_id] = WsState.BLOCKED
                    block[task_id] = dep
                    changed = True
                    break
    return block
