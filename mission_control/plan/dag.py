"""The dependency graph of a plan: layers, cycles, the critical path, the makespan.

All functions are pure: they read a ``Plan`` or ``Phase`` (or a plain mapping
of node -> dependencies) and return new lists, so the loader, the CLI and the
TUI can call them from any thread and tests can feed them random graphs. The
ordering itself is ``graphlib.TopologicalSorter``'s: ``prepare()`` finds a
cycle, ``get_ready()``/``done()`` hand out layers. What is added here is what a
person reading a message needs: every cycle, each told from its first node in
plan order, and layers that keep plan order. Two levels:

* graph level (``Graph``: node id -> the ids it depends on): ``find_cycles``,
  ``topological_layers``; used by the loader before a ``Plan`` exists;
* plan level, over resolved models: ``layers``, ``longest_path``, ``makespan``.

Phases run one after another: a workstream of a phase starts only once every
workstream of the earlier phases has finished, so dependencies on earlier
phases are always met by the time a phase runs. Ids: ``layers`` speaks in a
phase's own workstream ids; everything else in task ids (``PHASE::WS``).
"""

from __future__ import annotations

import graphlib
import heapq
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from .model import Phase, Plan, Workstream

Graph = Mapping[str, Sequence[str]]
"""Node id -> the ids it depends on. Ids absent from the mapping are ignored."""


class CycleError(ValueError):
    """The graph has a cycle; ``cycle`` lists it as ``[a, b, ..., a]``."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


# ---------------------------------------------------------------- graph level


def _sorter(graph: Graph) -> graphlib.TopologicalSorter[str]:
    """A sorter of ``graph`` (dependencies outside it left out), not yet prepared."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node, deps in graph.items():
        sorter.add(node, *(d for d in deps if d in graph))
    return sorter


def _blocked(graph: Graph) -> dict[str, list[str]]:
    """The part of ``graph`` that cycles keep from being ordered (empty when acyclic).

    After ``prepare()`` finds a cycle, the sorter still hands out every node no
    cycle holds back: what it never hands out is on a cycle or waits for one.
    """
    sorter = _sorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError:
        pass
    else:
        return {}
    ordered: set[str] = set()
    while ready := sorter.get_ready():
        sorter.done(*ready)
        ordered.update(ready)
    return {
        node: [d for d in deps if d in graph and d not in ordered]
        for node, deps in graph.items()
        if node not in ordered
    }


def _reversed(graph: Graph) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {node: [] for node in graph}
    for node, deps in graph.items():
        for dep in deps:
            users[dep].append(node)
    return users


def find_cycles(graph: Graph) -> list[list[str]]:
    """Cycles that share no node, each ``[a, b, ..., a]``, in plan order.

    Every arrow reads "depends on". Each cycle starts at its first node in the
    mapping's order and is the shortest cycle through that node that avoids the
    cycles before it; every cycle of the graph shares a node with one of them.
    The search runs only over the nodes graphlib cannot order either way
    round: those on a cycle, or between two.
    """
    waiting = _blocked(graph)
    tangle = _blocked(_reversed(waiting))
    cycles: list[list[str]] = []
    taken: set[str] = set()
    for node in graph:
        if node in tangle and node not in taken:
            cycle = _cycle_through(waiting, node, lambda n: n in tangle and n not in taken)
            if cycle is not None:
                cycles.append(cycle)
                taken.update(cycle)
    return cycles


def _cycle_through(graph: Graph, start: str, allowed: Callable[[str], bool]) -> list[str] | None:
    """The shortest path start -> ... -> start over ``allowed`` nodes (BFS), if any."""
    parent: dict[str, str] = {}
    queue: deque[str] = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for dep in graph[node]:
            if dep == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if dep not in seen and allowed(dep):
                seen.add(dep)
                parent[dep] = node
                queue.append(dep)
    return None


def _prepared(graph: Graph) -> graphlib.TopologicalSorter[str]:
    """A prepared sorter of ``graph``; our ``CycleError``, told from plan order, on a cycle."""
    sorter = _sorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError:
        raise CycleError(find_cycles(graph)[0]) from None
    return sorter


def topological_layers(graph: Graph) -> list[list[str]]:
    """Layers of nodes: layer 1 has no dependencies, layer n depends only on layers < n.

    Nodes keep the mapping's order within a layer. Each node sits in the
    earliest layer it can. Raises ``CycleError`` when there is a cycle.
    """
    order = {node: i for i, node in enumerate(graph)}
    sorter = _prepared(graph)
    result: list[list[str]] = []
    while ready := sorter.get_ready():
        result.append(sorted(ready, key=order.__getitem__))
        sorter.done(*ready)
    return result


# ---------------------------------------------------------------- plan level


def phase_graph(phase: Phase) -> dict[str, list[str]]:
    """The phase as a ``Graph`` of its own workstream ids (other phases left out)."""
    prefix = f"{phase.id}::"
    return {
        ws.id: [d[len(prefix) :] for d in ws.depends_on if d.startswith(prefix)]
        for ws in phase.workstreams
    }


def layers(phase: Phase) -> list[list[str]]:
    """The phase's workstream ids in dependency layers (see ``topological_layers``)."""
    return topological_layers(phase_graph(phase))


def worst_case_seconds(ws: Workstream) -> float:
    """How long a workstream can take: every attempt runs to its timeout, then every check."""
    checks = sum(check.timeout_minutes for check in ws.checks) * 60.0
    return (ws.retries + 1) * (ws.timeout_seconds + checks)


Weight = Callable[[Workstream], float]


def longest_path(
    scope: Plan | Phase, weight: Weight = worst_case_seconds
) -> tuple[float, list[str]]:
    """The heaviest dependency chain: its total weight (seconds) and its task ids.

    For a ``Plan`` the phases' chains follow one another. With unlimited
    parallel slots this is the run's duration when every workstream takes its
    weight; ``makespan`` adds the phases' parallel limits.
    """
    if isinstance(scope, Plan):
        total = 0.0
        path: list[str] = []
        for phase in scope.phases:
            seconds, phase_path = longest_path(phase, weight)
            total += seconds
            path += phase_path
        return total, path
    by_id = {ws.id: ws for ws in scope.workstreams}
    graph = phase_graph(scope)
    best: dict[str, tuple[float, str | None]] = {}
    for layer in topological_layers(graph):
        for ws_id in layer:
            before = max(
                ((best[d][0], d) for d in graph[ws_id]), default=(0.0, None), key=lambda t: t[0]
            )
            best[ws_id] = (before[0] + weight(by_id[ws_id]), before[1])
    if not best:
        return 0.0, []
    end = max(by_id, key=lambda ws_id: best[ws_id][0])
    chain: list[str] = []
    node: str | None = end
    while node is not None:
        chain.append(by_id[node].task_id)
        node = best[node][1]
    return best[end][0], chain[::-1]


def makespan(scope: Plan | Phase, weight: Weight = worst_case_seconds) -> float:
    """Seconds the run takes when every workstream takes its weight.

    Simulates the scheduler: workstreams start in plan order as soon as their
    dependencies are done and one of the phase's ``max_parallel_workstreams``
    slots is free. With the default weight it is the worst case, every attempt
    running to its timeout. Raises ``CycleError`` when there is a cycle.
    """
    if isinstance(scope, Plan):
        return sum(makespan(phase, weight) for phase in scope.phases)
    workstreams = scope.workstreams
    order = {ws.id: i for i, ws in enumerate(workstreams)}
    sorter = _prepared(phase_graph(scope))
    queue = [order[ws_id] for ws_id in sorter.get_ready()]
    heapq.heapify(queue)
    running: list[tuple[float, int]] = []
    now = 0.0
    slots = scope.max_parallel_workstreams
    while queue or running:
        while queue and len(running) < slots:
            i = heapq.heappop(queue)
            heapq.heappush(running, (now + weight(workstreams[i]), i))
        now, i = heapq.heappop(running)
        finished = [i]
        while running and running[0][0] == now:
            finished.append(heapq.heappop(running)[1])
        sorter.done(*(workstreams[j].id for j in finished))
        for ws_id in sorter.get_ready():
            heapq.heappush(queue, order[ws_id])
    return now
