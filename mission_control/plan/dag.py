"""The dependency graph of a plan: layers, the ready set, cycles, the critical path.

All functions are pure: they read a ``Plan`` or ``Phase`` (or a plain mapping
of node -> dependencies) and return new lists, so the loader, the scheduler,
the CLI and the TUI can call them from any thread and tests can feed them
random graphs. Two levels:

* graph level (``Graph``: node id -> the ids it depends on): ``find_cycles``,
  ``topological_layers``; used by the loader before a ``Plan`` exists;
* plan level, over resolved models: ``layers``, ``ready``, ``descendants``,
  ``longest_path``, ``makespan``.

Phases run one after another: a workstream of a phase starts only once every
workstream of the earlier phases has finished, so dependencies on earlier
phases are always met by the time a phase runs. Ids: ``layers`` speaks in a
phase's own workstream ids; everything else in task ids (``PHASE::WS``).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping, Sequence, Set

from .model import Phase, Plan, Workstream

Graph = Mapping[str, Sequence[str]]
"""Node id -> the ids it depends on. Ids absent from the mapping are ignored."""


class CycleError(ValueError):
    """The graph has a cycle; ``cycle`` lists it as ``[a, b, ..., a]``."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


# ---------------------------------------------------------------- graph level


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected component that has one.

    Each cycle is ``[a, b, ..., a]`` where every arrow reads "depends on"; it
    starts at the component's first node in the mapping's order and is the
    shortest cycle through that node. Iterative Tarjan, so long chains do not
    hit the recursion limit.
    """
    order = {node: i for i, node in enumerate(graph)}
    known = {node: [d for d in deps if d in order] for node, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, pos = work.pop()
            if pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            deps = known[node]
            recursed = False
            while pos < len(deps):
                dep = deps[pos]
                pos += 1
                if dep not in index:
                    work.append((node, pos))
                    work.append((dep, 0))
                    recursed = True
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            if recursed:
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    cycles: list[list[str]] = []
    for component in components:
        members = set(component)
        start = min(component, key=order.__getitem__)
        if len(component) == 1 and start not in graph[start]:
            continue
        cycles.append(_cycle_through(graph, start, members))
    cycles.sort(key=lambda cycle: order[cycle[0]])
    return cycles


def _cycle_through(graph: Graph, start: str, members: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside one component (BFS)."""
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
            if dep in members and dep not in seen:
                seen.add(dep)
                parent[dep] = node
                queue.append(dep)
    raise AssertionError("a strongly connected component always has a cycle")  # pragma: no cover


def topological_layers(graph: Graph) -> list[list[str]]:
    """Layers of nodes: layer 1 has no dependencies, layer n depends only on layers < n.

    Nodes keep the mapping's order within a layer. Each node sits in the
    earliest layer it can. Raises ``CycleError`` when there is a cycle.
    """
    order = {node: i for i, node in enumerate(graph)}
    waiting = {node: len({d for d in deps if d in order}) for node, deps in graph.items()}
    users: dict[str, list[str]] = {node: [] for node in graph}
    for node, deps in graph.items():
        for dep in {d for d in deps if d in order}:
            users[dep].append(node)
    current = [node for node in graph if waiting[node] == 0]
    result: list[list[str]] = []
    placed = 0
    while current:
        result.append(current)
        placed += len(current)
        following: list[str] = []
        for node in current:
            for user in users[node]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    following.append(user)
        current = sorted(following, key=order.__getitem__)
    if placed != len(order):
        raise CycleError(find_cycles(graph)[0])
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


def ready(
    scope: Plan | Phase,
    finished: Set[str],
    started: Set[str] = frozenset(),
) -> list[str]:
    """Task ids that may start now, in plan order.

    ``finished``: task ids whose work dependents may build on (succeeded or
    skipped); ``started``: task ids already started or done otherwise (running,
    failed...), never returned. For a ``Plan`` only the first phase with an
    unfinished workstream is looked at (phases run in order); for a ``Phase``
    dependencies on earlier phases count as met. The parallel limit is the
    caller's business.
    """
    if isinstance(scope, Plan):
        for phase in scope.phases:
            if any(ws.task_id not in finished for ws in phase.workstreams):
                return ready(phase, finished, started)
        return []
    prefix = f"{scope.id}::"
    return [
        ws.task_id
        for ws in scope.workstreams
        if ws.task_id not in finished
        and ws.task_id not in started
        and all(d in finished for d in ws.depends_on if d.startswith(prefix))
    ]


def descendants(plan: Plan, task_id: str) -> list[str]:
    """Every task id that depends on ``task_id``, directly or not, in plan order."""
    users: dict[str, list[str]] = {}
    for ws in plan.workstreams:
        for dep in ws.depends_on:
            users.setdefault(dep, []).append(ws.task_id)
    found: set[str] = set()
    queue: deque[str] = deque([task_id])
    while queue:
        for user in users.get(queue.popleft(), []):
            if user not in found:
                found.add(user)
                queue.append(user)
    return [ws.task_id for ws in plan.workstreams if ws.task_id in found]


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
    running to its timeout.
    """
    if isinstance(scope, Plan):
        return sum(makespan(phase, weight) for phase in scope.phases)
    order = {ws.id: i for i, ws in enumerate(scope.workstreams)}
    graph = phase_graph(scope)
    waiting = {ws_id: len(set(deps)) for ws_id, deps in graph.items()}
    users: dict[str, list[str]] = {ws_id: [] for ws_id in graph}
    for ws_id, deps in graph.items():
        for dep in set(deps):
            users[dep].append(ws_id)
    queue = [order[ws_id] for ws_id, count in waiting.items() if count == 0]
    heapq.heapify(queue)
    running: list[tuple[float, int]] = []
    now = 0.0
    done = 0
    slots = scope.max_parallel_workstreams
    while queue or running:
        while queue and len(running) < slots:
            i = heapq.heappop(queue)
            heapq.heappush(running, (now + weight(scope.workstreams[i]), i))
        if not running:
            break  # a cycle: what is left never becomes ready
        now, i = heapq.heappop(running)
        finished = [i]
        while running and running[0][0] == now:
            finished.append(heapq.heappop(running)[1])
        for j in finished:
            done += 1
            for user in users[scope.workstreams[j].id]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(queue, order[user])
    if done != len(order):
        raise CycleError(find_cycles(graph)[0])
    return now
