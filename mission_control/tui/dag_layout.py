"""A small layered layout of one phase's DAG, drawn with box-drawing characters.

Layers run left to right (a node's layer is its longest path from a root), so a
phase of forty workstreams grows downwards and scrolls, and each node keeps one
row for its icon and id. Edges that skip layers pass through dummy slots; node
order inside a layer follows a few barycenter sweeps to cut crossings. Every
edge gets its own lane in the gap after its source, and connectors are merged
per cell from direction bits, so crossings read as ``┼`` rather than vanishing.

The layout is pure (ids and edges in, a grid out) so it can be tested without a
screen, and it is computed only when the plan's shape changes: status changes
redraw labels, never the layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

_UP, _DOWN, _LEFT, _RIGHT = 1, 2, 4, 8

_BOX: dict[int, str] = {
    0: " ",
    _LEFT: "─",
    _RIGHT: "─",
    _LEFT | _RIGHT: "─",
    _UP: "│",
    _DOWN: "│",
    _UP | _DOWN: "│",
    _DOWN | _RIGHT: "┌",
    _DOWN | _LEFT: "┐",
    _UP | _RIGHT: "└",
    _UP | _LEFT: "┘",
    _UP | _DOWN | _RIGHT: "├",
    _UP | _DOWN | _LEFT: "┤",
    _DOWN | _LEFT | _RIGHT: "┬",
    _UP | _LEFT | _RIGHT: "┴",
    _UP | _DOWN | _LEFT | _RIGHT: "┼",
}

ARROW = "▸"


@dataclass(frozen=True, slots=True)
class PlacedNode:
    node_id: str
    label: str
    layer: int
    row: int
    x: int
    """Column where the node's cell (icon, space, label) starts."""
    width: int
    band: int = 0
    """Which of the stacked graphs (a run's phases) holds the node."""


@dataclass(slots=True)
class DagLayout:
    """Where every node sits and what each connector cell shows."""

    width: int
    height: int
    nodes: dict[str, PlacedNode] = field(default_factory=dict)
    connectors: dict[tuple[int, int], str] = field(default_factory=dict)
    """(x, y) -> one box-drawing character (or the arrow before a node)."""
    titles: dict[int, str] = field(default_factory=dict)
    """Row -> the title of the band (phase) that starts there."""

    def node_at(self, x: int, y: int) -> str | None:
        for node in self.nodes.values():
            if node.row == y and node.x <= x < node.x + node.width:
                return node.node_id
        return None


def stack_layouts(bands: Sequence[tuple[str, DagLayout]], title_width: int = 28) -> DagLayout:
    """Several graphs (a run's phases) one under the other, each under its title row.

    A title counts towards the width up to ``title_width`` cells; longer ones are cut
    when drawn, so one long phase name does not widen the panel.
    """
    if len(bands) == 1 and not bands[0][0]:
        return bands[0][1]
    result = DagLayout(width=1, height=0)
    for index, (title, lay) in enumerate(bands):
        top = result.height + 1  # the title row
        result.titles[result.height] = title
        for node in lay.nodes.values():
            result.nodes[node.node_id] = replace(node, row=node.row + top, band=index)
        for (x, y), ch in lay.connectors.items():
            result.connectors[(x, y + top)] = ch
        result.width = max(result.width, lay.width, min(len(title), title_width))
        result.height = top + lay.height
    result.height = max(result.height, 1)
    return result


def _layers(ids: Sequence[str], parents: Mapping[str, Sequence[str]]) -> dict[str, int]:
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(node: str) -> int:
        if node in layer:
            return layer[node]
        if node in visiting:  # a cycle is the loader's error to report; keep drawing
            return 0
        visiting.add(node)
        ps = [p for p in parents.get(node, ()) if p in id_set]
        value = 1 + max((depth(p) for p in ps), default=-1)
        visiting.discard(node)
        layer[node] = value
        return value

    id_set = set(ids)
    for node in ids:
        depth(node)
    return layer


def layout_dag(
    ids: Sequence[str],
    parents: Mapping[str, Iterable[str]],
    labels: Mapping[str, str] | None = None,
    *,
    gap: int = 4,
) -> DagLayout:
    """Lay out ``ids`` (in plan order) with edges ``parent -> id``.

    Parents outside ``ids`` (other phases) are ignored: the panel draws one phase.
    ``labels`` default to the ids; each node's cell is ``icon + space + label``.
    """
    labels = labels or {}
    parent_lists = {n: [p for p in parents.get(n, ()) if p in set(ids)] for n in ids}
    layer_of = _layers(ids, parent_lists)
    n_layers = 1 + max(layer_of.values(), default=0)

    # Slots per layer: real nodes plus dummies for edges that skip layers.
    slots: list[list[str]] = [[] for _ in range(n_layers)]
    for node in ids:
        slots[layer_of[node]].append(node)
    # edges as chains of slot names between consecutive layers
    hops: list[tuple[str, str]] = []
    for child in ids:
        for parent in parent_lists[child]:
            prev = parent
            for mid in range(layer_of[parent] + 1, layer_of[child]):
                dummy = f"\0{parent}\0{child}\0{mid}"
                slots[mid].append(dummy)
                hops.append((prev, dummy))
                prev = dummy
            hops.append((prev, child))

    ups: dict[str, list[str]] = {}
    downs: dict[str, list[str]] = {}
    for a, b in hops:
        downs.setdefault(a, []).append(b)
        ups.setdefault(b, []).append(a)

    # Barycenter sweeps: down then up, a few times.
    pos: dict[str, float] = {}

    def index(layer_slots: list[str]) -> None:
        for i, s in enumerate(layer_slots):
            pos[s] = float(i)

    for layer_slots in slots:
        index(layer_slots)
    for _ in range(4):
        for li in range(1, n_layers):
            slots[li].sort(key=lambda s: _bary(ups.get(s, ()), pos, pos[s]))
            index(slots[li])
        for li in range(n_layers - 2, -1, -1):
            slots[li].sort(key=lambda s: _bary(downs.get(s, ()), pos, pos[s]))
            index(slots[li])

    # Columns: each layer is as wide as its widest cell; the gap after a layer
    # holds one lane per source that has edges into the next layer.
    cell_width = [
        max((len(labels.get(s, s)) + 2 for s in layer_slots if not s.startswith("\0")), default=1)
        for layer_slots in slots
    ]
    lane_sources = [[s for s in slots[li] if downs.get(s)] for li in range(n_layers)]
    x_of_layer: list[int] = []
    x = 0
    for li in range(n_layers):
        x_of_layer.append(x)
        x += cell_width[li]
        if li < n_layers - 1:
            x += gap + max(0, len(lane_sources[li]) - 1)
    width = x
    height = max((len(s) for s in slots), default=0)

    result = DagLayout(width=width, height=max(height, 1))
    row_of: dict[str, int] = {}
    for li, layer_slots in enumerate(slots):
        for row, slot in enumerate(layer_slots):
            row_of[slot] = row
            if not slot.startswith("\0"):
                label = labels.get(slot, slot)
                result.nodes[slot] = PlacedNode(
                    node_id=slot,
                    label=label,
                    layer=li,
                    row=row,
                    x=x_of_layer[li],
                    width=len(label) + 2,
                )

    bits: dict[tuple[int, int], int] = {}

    def add(cx: int, cy: int, b: int) -> None:
        bits[(cx, cy)] = bits.get((cx, cy), 0) | b

    def hline(y: int, x0: int, x1: int) -> None:
        for cx in range(x0, x1 + 1):
            add(cx, y, (_LEFT if cx > x0 else 0) | (_RIGHT if cx < x1 else 0))

    arrows: set[tuple[int, int]] = set()
    for li in range(n_layers):
        # dummies: a straight line through the layer's cell
        for slot in slots[li]:
            if slot.startswith("\0"):
                y = row_of[slot]
                for cx in range(x_of_layer[li], x_of_layer[li] + cell_width[li]):
                    add(cx, y, _LEFT | _RIGHT)
        if li == n_layers - 1:
            continue
        gap_start = x_of_layer[li] + cell_width[li]
        gap_end = x_of_layer[li + 1] - 2  # one blank column before the next node
        for lane, src in enumerate(lane_sources[li]):
            lane_x = gap_start + 1 + lane
            src_y = row_of[src]
            src_x = (
                x_of_layer[li] + len(labels.get(src, src)) + 2
                if not src.startswith("\0")
                else gap_start
            )
            # from the end of the source's label to its lane
            for cx in range(src_x, lane_x):
                add(cx, src_y, _LEFT | _RIGHT)
            add(lane_x, src_y, _LEFT)
            for dst in downs[src]:
                dst_y = row_of[dst]
                lo, hi = sorted((src_y, dst_y))
                for cy in range(lo, hi + 1):
                    add(lane_x, cy, (_UP if cy > lo else 0) | (_DOWN if cy < hi else 0))
                if not dst.startswith("\0"):
                    hline(dst_y, lane_x, gap_end)
                    arrows.add((gap_end, dst_y))
                else:  # a dummy's line runs on through the blank column
                    hline(dst_y, lane_x, gap_end + 1)
                    add(gap_end + 1, dst_y, _RIGHT)
    for (cx, cy), mask in bits.items():
        if any(n.row == cy and n.x <= cx < n.x + n.width for n in result.nodes.values()):
            continue
        result.connectors[(cx, cy)] = _BOX.get(mask, "┼")
    for cell in arrows:
        result.connectors[cell] = ARROW
    return result


def _bary(neighbours: Iterable[str], pos: Mapping[str, float], default: float) -> float:
    values = [pos[n] for n in neighbours if n in pos]
    if not values:
        return default
    return sum(values) / len(values)
