"""The scheduler is pure: random DAGs run to the end without breaking a limit or an order."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from mission_control.engine.scheduler import Decision, PhaseNode, PlanGraph, decide
from mission_control.engine.states import (
    ACTIVE,
    DONE_FOR_DEPENDENTS,
    FAILED_STATES,
    TERMINAL,
    WsState,
)


def _graph(phases: list[tuple[int, int]], edges_seed: int) -> PlanGraph:
    """Phases of (size, limit); each workstream depends on random earlier ones."""
    rng = random.Random(edges_seed)
    nodes: list[PhaseNode] = []
    deps: dict[str, tuple[str, ...]] = {}
    earlier: list[str] = []
    for p, (size, limit) in enumerate(phases):
        ids = [f"P{p}::W{i}" for i in range(size)]
        for i, task_id in enumerate(ids):
            pool = earlier + ids[:i]
            deps[task_id] = tuple(rng.sample(pool, k=min(len(pool), rng.randint(0, 3))))
        nodes.append(PhaseNode(f"P{p}", limit, tuple(ids)))
        earlier += ids
    return PlanGraph(tuple(nodes), deps)


@dataclass(frozen=True)
class _RandomPlan:
    graph: PlanGraph
    seed: int
    """Made its dependencies; also seeds what a test draws next."""
    global_limit: int | None


@st.composite
def _plans(draw: st.DrawFn) -> _RandomPlan:
    """Random plans: phases of (size, limit), random dependencies, a global limit or none."""
    phases = draw(st.lists(st.tuples(st.integers(1, 8), st.integers(1, 4)), min_size=1, max_size=4))
    seed = draw(st.integers(0, 10_000))
    return _RandomPlan(_graph(phases, seed), seed, draw(st.one_of(st.none(), st.integers(1, 5))))


@settings(max_examples=150, deadline=None)
@given(plan=_plans(), fail_rate=st.sampled_from([0.0, 0.3]), keep_going=st.booleans())
def test_random_plans_respect_limits_and_order(
    plan: _RandomPlan, fail_rate: float, keep_going: bool
) -> None:
    graph, global_limit = plan.graph, plan.global_limit
    rng = random.Random(plan.seed + 1)
    states = {t: WsState.PENDING for p in graph.phases for t in p.task_ids}
    phase_of = {t: p for p in graph.phases for t in p.task_ids}
    for _ in range(1000):
        decision = decide(graph, states, max_parallel=global_limit, keep_going=keep_going)
        for task_id in decision.block:
            states[task_id] = WsState.BLOCKED
        for task_id in decision.queue:
            states[task_id] = WsState.QUEUED
        for task_id in decision.start:
            assert all(states[d] is WsState.SUCCEEDED for d in graph.deps[task_id])
            states[task_id] = WsState.RUNNING
        running = [t for t, s in states.items() if s in ACTIVE]
        if global_limit is not None:
            assert len(running) <= global_limit
        for phase in graph.phases:
            assert sum(1 for t in running if phase_of[t] is phase) <= phase.max_parallel
        # every running workstream belongs to one phase: phases never overlap
        assert len({phase_of[t].phase_id for t in running}) <= 1
        if decision.finished:
            break
        if running:
            done = rng.choice(running)
            states[done] = WsState.FAILED if rng.random() < fail_rate else WsState.SUCCEEDED
    else:
        raise AssertionError("the scheduler never finished")
    assert not any(s in ACTIVE for s in states.values())
    if fail_rate == 0.0:
        assert all(s is WsState.SUCCEEDED for s in states.values())
    else:
        for task_id, state in states.items():
            if state is WsState.BLOCKED:
                assert any(
                    states[d] in (WsState.FAILED, WsState.BLOCKED) for d in graph.deps[task_id]
                )


def test_diamond_starts_dependent_only_after_both() -> None:
    graph = PlanGraph(
        (PhaseNode("P", 4, ("P::A", "P::B", "P::C", "P::D")),),
        {"P::A": (), "P::B": ("P::A",), "P::C": ("P::A",), "P::D": ("P::B", "P::C")},
    )
    states = dict.fromkeys(graph.deps, WsState.PENDING)
    assert decide(graph, states).start == ("P::A",)
    states["P::A"] = WsState.SUCCEEDED
    assert decide(graph, states).start == ("P::B", "P::C")
    states.update({"P::B": WsState.SUCCEEDED, "P::C": WsState.RUNNING})
    assert decide(graph, states).start == ()
    states["P::C"] = WsState.SUCCEEDED
    assert decide(graph, states).start == ("P::D",)


def test_failure_blocks_dependents_transitively_and_stops_later_phases() -> None:
    graph = PlanGraph(
        (PhaseNode("P1", 2, ("P1::A", "P1::B", "P1::C")), PhaseNode("P2", 2, ("P2::X",))),
        {"P1::A": (), "P1::B": ("P1::A",), "P1::C": ("P1::B",), "P2::X": ()},
    )
    states = dict.fromkeys(graph.deps, WsState.PENDING)
    states["P1::A"] = WsState.FAILED
    decision = decide(graph, states)
    assert decision.block == {"P1::B": "P1::A", "P1::C": "P1::B"}
    states.update({"P1::B": WsState.BLOCKED, "P1::C": WsState.BLOCKED})
    stopped = decide(graph, states)
    assert stopped.start == () and stopped.finished
    going = decide(graph, states, keep_going=True)
    assert going.start == ("P2::X",) and going.phase == "P2"


def test_queue_when_no_slot_and_paused_holds_its_slot() -> None:
    graph = PlanGraph((PhaseNode("P", 1, ("P::A", "P::B")),), {"P::A": (), "P::B": ()})
    states = {"P::A": WsState.PAUSED, "P::B": WsState.PENDING}
    decision = decide(graph, states)
    assert decision.start == () and decision.queue == ("P::B",) and not decision.finished


def test_committed_work_lets_dependents_start_and_frees_the_slot() -> None:
    graph = PlanGraph(
        (PhaseNode("P", 1, ("P::A", "P::B")),),
        {"P::A": (), "P::B": ("P::A",)},
    )
    states = {"P::A": WsState.FINISHING, "P::B": WsState.PENDING}
    assert decide(graph, states).start == ()
    ready = decide(graph, states, ready_for_dependents=frozenset({"P::A"}))
    assert ready.start == ("P::B",)
    assert not ready.finished  # A still finishing keeps its phase open


def test_a_land_auto_phase_holds_the_next_one_until_it_has_landed() -> None:
    graph = PlanGraph(
        (PhaseNode("P1", 2, ("P1::A", "P1::B"), auto_land=True), PhaseNode("P2", 1, ("P2::C",))),
        {"P2::C": ()},
    )
    done = {"P1::A": WsState.SUCCEEDED, "P1::B": WsState.SUCCEEDED, "P2::C": WsState.PENDING}
    due = decide(graph, done)
    assert (due.land, due.start, due.phase, due.finished) == ("P1", (), "P1", False)
    after = decide(graph, done, landed=frozenset({"P1"}))
    assert (after.land, after.start) == (None, ("P2::C",))
    stopped = decide(graph, done, landing_failed=frozenset({"P1"}))
    assert (stopped.land, stopped.start, stopped.finished) == (None, (), True)
    # a phase with a failure does not land (and, without keep_going, stops the run as before)
    failed = {**done, "P1::B": WsState.FAILED}
    assert decide(graph, failed).land is None
    assert decide(graph, failed, keep_going=True).start == ("P2::C",)


def _decide_one_by_one(
    graph: PlanGraph,
    states: dict[str, WsState],
    *,
    max_parallel: int | None,
    keep_going: bool,
    ready_for_dependents: frozenset[str],
    landed: frozenset[str],
    landing_failed: frozenset[str],
) -> Decision:
    """The rules of ``decide`` written plainly, one workstream at a time: what the
    scheduler's set-at-a-time passes must agree with."""
    local = dict(states)
    block: dict[str, str] = {}
    waiting = {WsState.PENDING, WsState.QUEUED, WsState.INTERRUPTED}
    changed = True
    while changed:
        changed = False
        for task_id, deps in graph.deps.items():
            if local.get(task_id, WsState.PENDING) not in waiting:
                continue
            for dep in deps:
                if local.get(dep) in FAILED_STATES:
                    local[task_id], block[task_id], changed = WsState.BLOCKED, dep, True
                    break
    holding = {t for t, s in local.items() if s in ACTIVE and t not in ready_for_dependents}
    start: list[str] = []
    queue: list[str] = []
    phase_id = land = None
    for index, phase in enumerate(graph.phases):
        if all(local.get(t, WsState.PENDING) in TERMINAL for t in phase.task_ids):
            if not phase.auto_land or phase.phase_id in landed:
                continue
            if phase.phase_id in landing_failed:
                break
            if all(local.get(t) is WsState.SUCCEEDED for t in phase.task_ids):
                phase_id = land = phase.phase_id
                break
            continue
        before = [t for p in graph.phases[:index] for t in p.task_ids]
        if any(local.get(t) in FAILED_STATES for t in before) and not keep_going:
            break
        phase_id = phase.phase_id
        slots = phase.max_parallel - sum(1 for t in phase.task_ids if t in holding)
        if max_parallel is not None:
            slots = min(slots, max_parallel - len(holding))
        for task_id in phase.task_ids:
            if local.get(task_id, WsState.PENDING) not in waiting:
                continue
            if not all(
                local.get(d) in DONE_FOR_DEPENDENTS or d in ready_for_dependents
                for d in graph.deps.get(task_id, ())
            ):
                continue
            if slots > 0:
                start.append(task_id)
                slots -= 1
            elif local.get(task_id) is not WsState.QUEUED:
                queue.append(task_id)
        break
    finished = not holding and not start and land is None
    return Decision(tuple(start), tuple(queue), block, phase_id, finished, land)


@settings(max_examples=300, deadline=None)
@given(plan=_plans(), keep_going=st.booleans(), auto_land=st.booleans())
def test_decisions_match_the_rules_taken_one_workstream_at_a_time(
    plan: _RandomPlan, keep_going: bool, auto_land: bool
) -> None:
    graph, global_limit = plan.graph, plan.global_limit
    if auto_land:
        graph = PlanGraph(
            tuple(PhaseNode(p.phase_id, p.max_parallel, p.task_ids, True) for p in graph.phases),
            graph.deps,
        )
    rng = random.Random(plan.seed)
    every = [t for p in graph.phases for t in p.task_ids]
    phase_ids = [p.phase_id for p in graph.phases]
    for _ in range(20):
        # Any mix of states; some workstreams left out, as the engine may leave out none.
        states = {t: rng.choice(list(WsState)) for t in every if rng.random() < 0.95}
        ready = frozenset(t for t in every if rng.random() < 0.2)
        landed = frozenset(p for p in phase_ids if rng.random() < 0.5)
        stopped = frozenset(p for p in phase_ids if rng.random() < 0.2)
        made, expected = (
            rules(
                graph,
                states,
                max_parallel=global_limit,
                keep_going=keep_going,
                ready_for_dependents=ready,
                landed=landed,
                landing_failed=stopped,
            )
            for rules in (decide, _decide_one_by_one)
        )
        assert made == expected
