"""The phase's DAG: layered left to right, connectors in box-drawing characters.

A Line-API widget: the layout (``dag_layout``) is computed when the graph
changes, each row is rendered to a strip once per state change, and only the
visible rows are cropped and painted, so a forty-node phase scrolls smoothly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...engine.states import ICONS, WsState
from ..dag_layout import DagLayout, layout_dag, stack_layouts
from ..untrusted import plain
from .status_style import STATE_CLASSES, state_class, state_css


@dataclass(frozen=True, slots=True)
class DagBand:
    """One phase's graph and the title over it."""

    title: str
    ids: tuple[str, ...]
    parents: Mapping[str, Sequence[str]]
    labels: Mapping[str, str]


class DagView(ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", tooltip="Previous workstream", show=False),
        Binding("down,j", "move(1)", "Down", tooltip="Next workstream", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = set(STATE_CLASSES) | {
        "dag-view--edge",
        "dag-view--selected",
        "dag-view--band",
    }

    DEFAULT_CSS = """
    DagView {
        background: $surface;
        scrollbar-size: 1 1;
    }
    DagView > .dag-view--edge { color: $text-muted; }
    DagView > .dag-view--selected { text-style: reverse bold; }
    DagView > .dag-view--band { color: $text-muted; text-style: bold underline; }
    """ + state_css("DagView")

    selected: reactive[str | None] = reactive(None)
    """Task id of the highlighted node."""

    class Selected(Message):
        """The user clicked (or moved to) a node."""

        def __init__(self, dag_view: DagView, task_id: str) -> None:
            super().__init__()
            self.dag_view = dag_view
            self.task_id = task_id

        @property
        def control(self) -> DagView:
            return self.dag_view

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._key: tuple[object, ...] = ()
        self._layout = DagLayout(width=1, height=1)
        self._states: dict[str, WsState] = {}
        self._strips: list[Strip] | None = None

    # ------------------------------------------------------------ inputs

    def set_graph(
        self,
        ids: Sequence[str],
        parents: Mapping[str, Sequence[str]],
        labels: Mapping[str, str],
    ) -> None:
        """Lay out one graph, with no title."""
        self.set_bands([DagBand("", tuple(ids), parents, labels)])

    def set_bands(self, bands: Sequence[DagBand]) -> None:
        """Lay out graphs one under another (a run's phases); cheap to call again with
        the same ones: the layout changes only with the plan's shape."""
        key = tuple((b.title, b.ids, tuple(b.labels.get(i, "") for i in b.ids)) for b in bands)
        if key == self._key:
            return
        self._key = key
        self._layout = stack_layouts(
            [
                (
                    plain(band.title),
                    layout_dag(
                        band.ids, band.parents, {k: plain(v) for k, v in band.labels.items()}
                    ),
                )
                for band in bands
            ]
        )
        self.virtual_size = Size(self._layout.width, self._layout.height)
        self._invalidate()

    def set_states(self, states: Mapping[str, WsState]) -> None:
        if dict(states) == self._states:
            return
        self._states = dict(states)
        self._invalidate()

    def watch_selected(self, _old: str | None, new: str | None) -> None:
        self._invalidate()
        node = self._layout.nodes.get(new) if new else None
        if node is not None and self.is_mounted:
            self.scroll_to_region(
                Region(node.x, node.row, node.width, 1), animate=False, immediate=True
            )

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._invalidate()  # theme change: the component styles changed

    def _invalidate(self) -> None:
        self._strips = None
        self.refresh()

    # ------------------------------------------------------------ rendering

    def _build(self) -> list[Strip]:
        lay = self._layout
        edge = self.get_component_rich_style("dag-view--edge", partial=True)
        selected = self.get_component_rich_style("dag-view--selected", partial=True)
        base = self.rich_style
        styles: dict[WsState, Style] = {
            state: self.get_component_rich_style(state_class(state), partial=True)
            for state in WsState
        }
        rows: list[list[tuple[int, str, Style]]] = [[] for _ in range(lay.height)]
        for (x, y), ch in lay.connectors.items():
            rows[y].append((x, ch, edge))
        band = self.get_component_rich_style("dag-view--band", partial=True)
        for y, title in lay.titles.items():
            rows[y].append((0, title[: lay.width], band))
        for node in lay.nodes.values():
            state = self._states.get(node.node_id, WsState.PENDING)
            style = styles[state]
            if node.node_id == self.selected:
                style = style + selected
            rows[node.row].append((node.x, f"{ICONS[state]} {node.label}", style))
        strips: list[Strip] = []
        for cells in rows:
            cells.sort(key=lambda c: c[0])
            segments: list[Segment] = []
            cursor = 0
            for x, text, style in cells:
                if x > cursor:
                    segments.append(Segment(" " * (x - cursor), base))
                segments.append(Segment(text, base + style))
                cursor = x + len(text)
            if cursor < lay.width:
                segments.append(Segment(" " * (lay.width - cursor), base))
            strips.append(Strip(segments, lay.width).simplify())
        return strips

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        if self._strips is None:
            self._strips = self._build()
        width = self.size.width
        if row >= len(self._strips):
            return Strip.blank(width, self.rich_style)
        return self._strips[row].crop_extend(scroll_x, scroll_x + width, self.rich_style).simplify()

    # ------------------------------------------------------------ input

    def on_click(self, event: events.Click) -> None:
        x, y = event.x + self.scroll_x, event.y + self.scroll_y
        task_id = self._layout.node_at(int(x), int(y))
        if task_id is not None:
            self.selected = task_id
            self.post_message(self.Selected(self, task_id))

    def action_move(self, delta: int) -> None:
        ids = sorted(
            self._layout.nodes,
            key=lambda n: (
                self._layout.nodes[n].band,
                self._layout.nodes[n].layer,
                self._layout.nodes[n].row,
            ),
        )
        if not ids:
            return
        index = ids.index(self.selected) if self.selected in ids else -1
        target = ids[max(0, min(len(ids) - 1, index + delta))]
        self.selected = target
        self.post_message(self.Selected(self, target))
