"""The plan's graph: layers, cycles, critical path, makespan; on random DAGs too."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mission_control.plan import dag
from mission_control.plan.model import Check, Phase, Plan, Workstream


def _ws(
    phase: str, ws_id: str, deps: list[str], minutes: float = 1.0, **extra: object
) -> Workstream:
    return Workstream(
        id=ws_id,
        name=ws_id,
        phase_id=phase,
        repo=Path("/repo"),
        base_branch="main",
        tool="shell",
        command=["true"],
        timeout_minutes=minutes,
        depends_on=deps,
        worktree_root=Path("/wt"),
        **extra,  # type: ignore[arg-type]
    )


def _phase(
    phase_id: str,
    spec: dict[str, list[str]],
    limit: int = 10,
    minutes: dict[str, float] | None = None,
) -> Phase:
    times = minutes or {}
    return Phase(
        id=phase_id,
        name=phase_id,
        max_parallel_workstreams=limit,
        workstreams=[
            _ws(
                phase_id,
                ws_id,
                [d if "::" in d else f"{phase_id}::{d}" for d in deps],
                times.get(ws_id, 1.0),
            )
            for ws_id, deps in spec.items()
        ],
    )


def _plan(*phases: Phase) -> Plan:
    return Plan(path=Path("/p.yaml"), name="p", phases=list(phases))


# ---------------------------------------------------------------- examples


def test_layers_of_the_design_note_plan() -> None:
    phase = _phase("PH-07", {"WS-07A": [], "WS-07B": ["WS-07A"], "WS-07C": ["WS-07A", "WS-07B"]})
    assert dag.layers(phase) == [["WS-07A"], ["WS-07B"], ["WS-07C"]]


def test_layers_keep_plan_order_and_ignore_other_phases() -> None:
    phase = _phase("P2", {"C": ["A"], "A": ["P1::X"], "B": [], "D": ["B", "A"]})
    assert dag.layers(phase) == [["A", "B"], ["C", "D"]]


def test_find_cycles_returns_each_cycle_once_from_its_first_node() -> None:
    graph = {"A": ["B"], "B": ["C"], "C": ["A"], "D": ["D"], "E": ["A"], "F": ["G"], "G": ["F"]}
    assert dag.find_cycles(graph) == [["A", "B", "C", "A"], ["D", "D"], ["F", "G", "F"]]
    assert dag.find_cycles({"A": [], "B": ["A", "Z"]}) == []


def test_find_cycles_names_a_second_cycle_of_one_tangle() -> None:
    # A<->B and C<->D hang together through B<->C: breaking A<->B leaves C<->D
    graph = {"A": ["B"], "B": ["A", "C"], "C": ["B", "D"], "D": ["C"]}
    assert dag.find_cycles(graph) == [["A", "B", "A"], ["C", "D", "C"]]


def test_cycle_error_from_layers() -> None:
    with pytest.raises(dag.CycleError) as caught:
        dag.topological_layers({"A": ["B"], "B": ["A"]})
    assert caught.value.cycle == ["A", "B", "A"]
    assert str(caught.value) == "dependency cycle: A -> B -> A"


def test_long_chain_does_not_hit_the_recursion_limit() -> None:
    graph = {f"N{i}": ([f"N{i - 1}"] if i else []) for i in range(5000)}
    graph["N0"] = ["N4999"]
    (cycle,) = dag.find_cycles(graph)
    assert len(cycle) == 5001 and cycle[0] == cycle[-1] == "N0"
    graph["N0"] = []
    assert len(dag.topological_layers(graph)) == 5000


def test_worst_case_counts_retries_and_checks() -> None:
    ws = _ws("P", "A", [], 10, retries=2, checks=[Check(name="t", argv=["t"], timeout_minutes=5)])
    assert dag.worst_case_seconds(ws) == 3 * (10 + 5) * 60


def test_longest_path_and_makespan() -> None:
    minutes = {"A": 60, "B": 90, "C": 120, "D": 10}
    phase = _phase("PH", {"A": [], "B": ["A"], "C": ["A", "B"], "D": []}, limit=3, minutes=minutes)
    assert dag.longest_path(phase) == (270 * 60.0, ["PH::A", "PH::B", "PH::C"])
    assert dag.makespan(phase) == 270 * 60.0
    one_at_a_time = _phase(
        "PH", {"A": [], "B": [], "C": []}, limit=1, minutes={"A": 1, "B": 2, "C": 3}
    )
    assert dag.makespan(one_at_a_time) == 6 * 60.0
    assert dag.longest_path(one_at_a_time) == (3 * 60.0, ["PH::C"])
    plan = _plan(phase, one_at_a_time.model_copy(update={"id": "P2"}))
    assert dag.makespan(plan) == (270 + 6) * 60.0
    assert dag.longest_path(plan, weight=lambda ws: 1.0)[0] == 3 + 1


# ---------------------------------------------------------------- random DAGs


@st.composite
def _dags(draw: st.DrawFn) -> tuple[dict[str, list[str]], dict[str, float], int]:
    size = draw(st.integers(1, 25))
    seed = draw(st.integers(0, 10**6))
    rng = random.Random(seed)
    ids = [f"W{i}" for i in range(size)]
    rng.shuffle(ids)  # plan order is not topological order
    position = {ws_id: i for i, ws_id in enumerate(sorted(ids, key=lambda s: int(s[1:])))}
    graph = {
        ws_id: [d for d in ids if position[d] < position[ws_id] and rng.random() < 0.3]
        for ws_id in ids
    }
    minutes = {ws_id: float(rng.choice([0.5, 1, 2, 5])) for ws_id in ids}
    return graph, minutes, draw(st.integers(1, 6))


@settings(max_examples=200, deadline=None)
@given(case=_dags())
def test_random_dags(case: tuple[dict[str, list[str]], dict[str, float], int]) -> None:
    graph, minutes, limit = case
    phase = _phase("P", graph, limit=limit, minutes=minutes)
    layers = dag.layers(phase)
    assert dag.find_cycles(graph) == []
    # every workstream exactly once, each in the earliest layer its dependencies allow
    where = {ws_id: n for n, layer in enumerate(layers) for ws_id in layer}
    assert sorted(where) == sorted(graph)
    for ws_id, deps in graph.items():
        assert where[ws_id] == (max((where[d] for d in deps), default=-1) + 1)
    order = list(graph)
    for layer in layers:
        assert layer == sorted(layer, key=order.index)
    # the longest path is a real chain and as heavy as a brute-force DP says
    best: dict[str, float] = {}
    for layer in layers:
        for ws_id in layer:
            best[ws_id] = minutes[ws_id] * 60 + max((best[d] for d in graph[ws_id]), default=0.0)
    seconds, path = dag.longest_path(phase)
    assert seconds == pytest.approx(max(best.values()))
    assert seconds == pytest.approx(sum(minutes[t.split("::")[1]] * 60 for t in path))
    for before, after in itertools.pairwise(path):
        assert before.split("::")[1] in graph[after.split("::")[1]]
    # the makespan lies between the critical path and running everything in a row
    total = sum(minutes.values()) * 60
    span = dag.makespan(phase)
    assert seconds - 1e-6 <= span <= total + 1e-6
    if limit >= len(graph):
        assert span == pytest.approx(seconds)
    if limit == 1:
        assert span == pytest.approx(total)


@settings(max_examples=150, deadline=None)
@given(case=_dags(), data=st.data())
def test_a_back_edge_makes_a_cycle_that_is_found(
    case: tuple[dict[str, list[str]], dict[str, float], int], data: st.DataObject
) -> None:
    graph, _, _ = case
    chains = [(a, b) for a, deps in graph.items() for b in deps]
    if not chains:
        graph = {**graph, "W0": [*graph["W0"], "W0"]}
    else:
        a, b = data.draw(st.sampled_from(chains))
        graph = {**graph, b: [*graph[b], a]}  # a depends on b, now b on a
    cycles = dag.find_cycles(graph)
    assert cycles
    for cycle in cycles:
        assert cycle[0] == cycle[-1]
        for node, dep in itertools.pairwise(cycle):
            assert dep in graph[node]
    with pytest.raises(dag.CycleError):
        dag.topological_layers(graph)
