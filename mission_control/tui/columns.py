"""The workstream table's columns, declared: what each shows, how it sorts, what it needs.

One ``ColumnSpec`` per column, in the order they appear. ``priority`` says which
go first when the terminal narrows (the highest number is dropped first);
``min_width`` and ``max_width`` bound a column's share, and its content decides
where in between it lands. The one column without a ``max_width`` (the last
output) takes what is left. ``fit_columns`` is pure, so the layout at any
width is a plain function of the cells: a new column is one entry here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len

from ..engine.snapshot import WorkstreamView
from ..engine.states import ACTIVE, ICONS, WsState
from .format import clock, cost_text, duration, limit, percent, size
from .messages import LogProbe
from .widgets.status_style import state_class

Cell = tuple[str, str]
"""A cell's text and the component class that styles it ("" for none)."""
CellOf = Callable[[WorkstreamView, "LogProbe | None", float], Cell]

MUTED = "workstream-table--muted"
WARN = "workstream-table--warn"
STALLED = "workstream-table--stalled"
CELL_PADDING = 1
"""Blank cells on each side of a column (the DataTable's ``cell_padding``)."""
CORE = 4
"""The most useful columns (state, name, time, last output) stay while their minimums fit."""
FLEX_WANT = 36
"""The room the flexible column (the last output: why a workstream failed) is given
before less useful columns are kept."""


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    key: str
    label: str
    priority: int
    """Lower stays longer as the width shrinks."""
    min_width: int
    max_width: int | None
    """``None``: the flexible column, which takes the width the others leave."""
    cell: CellOf
    sort_key: Callable[[WorkstreamView, LogProbe | None, float], Any]


_ORDER = {state: i for i, state in enumerate(WsState)}
_PR_NUMBER = re.compile(r"/pull/(\d+)")


def idle_seconds(view: WorkstreamView, probe: LogProbe | None, now: float) -> float | None:
    """Seconds since the agent last wrote; None when it is not expected to write (not
    running, or paused: a paused agent's silence is the user's doing)."""
    if view.state not in ACTIVE or view.state is WsState.PAUSED:
        return None
    last = max(view.last_output_at or 0.0, probe.mtime if probe else 0.0)
    if not last:
        return None
    return max(0.0, now - last)


def _status(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    return f"{ICONS[v.state]} {v.state.value.replace('_', ' ')}", state_class(v.state)


def _elapsed(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    if v.started_at is None:
        return f"-/{limit(v.timeout_seconds)}", MUTED
    elapsed = v.elapsed(n)
    warn = v.state in ACTIVE and elapsed > 0.8 * v.timeout_seconds
    return f"{clock(elapsed)}/{limit(v.timeout_seconds)}", WARN if warn else ""


def _idle(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    idle = idle_seconds(v, p, n)
    if idle is None:
        return "-", MUTED
    if v.stalled:
        return f"⚠ {duration(idle)}", STALLED
    return duration(idle), ""


def _changes(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    if not (v.insertions or v.deletions or v.files_changed):
        return "-", MUTED
    return f"+{v.insertions}/-{v.deletions}", ""


def _conflicts(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    if not v.conflicts:
        return "-", MUTED
    return f"⚠ {len(v.conflicts)}", WARN


def _pr(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    if not v.pr_url:
        return "-", MUTED
    match = _PR_NUMBER.search(v.pr_url)
    return (f"#{match.group(1)}" if match else "open"), ""


def _doing(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    if v.state is WsState.NEEDS_INPUT:
        return f"? {v.needs_input or v.detail}", WARN
    if v.doing:
        return v.doing, "" if v.state in ACTIVE else MUTED
    return "-", MUTED


def _cost(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    text = cost_text(v.tokens.total, v.cost_usd)
    return text, MUTED if text == "-" else ""


def _last(v: WorkstreamView, p: LogProbe | None, n: float) -> Cell:
    if p is not None and p.last_line:
        return p.last_line, ""
    return (v.detail or ""), MUTED


COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("status", "State", 0, 9, 13, _status, lambda v, p, n: _ORDER[v.state]),
    ColumnSpec(
        "name", "Name", 1, 10, 30, lambda v, p, n: (v.name, ""), lambda v, p, n: v.name.lower()
    ),
    ColumnSpec("doing", "Doing", 5, 8, 32, _doing, lambda v, p, n: v.doing or ""),
    ColumnSpec("elapsed", "Time", 2, 7, 14, _elapsed, lambda v, p, n: v.elapsed(n)),
    ColumnSpec("cost", "Cost", 4, 4, 9, _cost, lambda v, p, n: (v.cost_usd or 0.0, v.tokens.total)),
    ColumnSpec("idle", "Quiet", 7, 4, 8, _idle, lambda v, p, n: idle_seconds(v, p, n) or 0.0),
    ColumnSpec("conflicts", "Conf", 6, 4, 5, _conflicts, lambda v, p, n: len(v.conflicts)),
    ColumnSpec("changes", "+/-", 9, 3, 12, _changes, lambda v, p, n: v.insertions + v.deletions),
    ColumnSpec("pr", "PR", 10, 2, 7, _pr, lambda v, p, n: v.pr_url or ""),
    ColumnSpec(
        "attempt",
        "#",
        11,
        1,
        3,
        lambda v, p, n: ((str(v.attempt) if v.attempt else "-"), ""),
        lambda v, p, n: v.attempt,
    ),
    ColumnSpec("tool", "Tool", 12, 4, 12, lambda v, p, n: (v.tool, ""), lambda v, p, n: v.tool),
    ColumnSpec("id", "ID", 8, 6, 14, lambda v, p, n: (v.ws_id, ""), lambda v, p, n: v.ws_id),
    ColumnSpec(
        "cpu",
        "CPU",
        13,
        3,
        5,
        lambda v, p, n: ((percent(v.cpu_percent) if v.pid else "-"), ""),
        lambda v, p, n: v.cpu_percent,
    ),
    ColumnSpec(
        "mem",
        "Mem",
        14,
        3,
        6,
        lambda v, p, n: ((size(v.rss_bytes) if v.pid else "-"), ""),
        lambda v, p, n: v.rss_bytes,
    ),
    ColumnSpec("last", "Last output", 3, 20, None, _last, lambda v, p, n: p.last_line if p else ""),
)
COLUMN_BY_KEY: Mapping[str, ColumnSpec] = {c.key: c for c in COLUMNS}


def content_widths(
    specs: Sequence[ColumnSpec], rows: Sequence[Mapping[str, Cell]]
) -> dict[str, int]:
    """Each column's widest cell or label, in terminal cells."""
    widths = {spec.key: cell_len(spec.label) for spec in specs}
    for row in rows:
        for key, (text, _cls) in row.items():
            width = cell_len(text)
            if width > widths.get(key, 0):
                widths[key] = width
    return widths


def fit_columns(
    specs: Sequence[ColumnSpec], wanted: Mapping[str, int], width: int
) -> list[tuple[ColumnSpec, int]]:
    """The columns that fit in ``width`` cells and their widths, in display order.

    The columns whose minimum widths fit are candidates (by priority). While their
    wanted widths (content, within bounds; ``FLEX_WANT`` for the flexible one) do not
    fit, the least useful is dropped, down to the ``CORE`` most useful. Then each
    grows from its minimum toward its wanted width, those short of the least first,
    and the flexible column takes the rest. Nothing is wider than ``width``.
    """
    pad = 2 * CELL_PADDING

    def want(spec: ColumnSpec) -> int:
        if spec.max_width is None:
            return max(spec.min_width, FLEX_WANT)
        return min(max(wanted.get(spec.key, spec.min_width), spec.min_width), spec.max_width)

    chosen: list[ColumnSpec] = []
    used = 0
    for spec in sorted(specs, key=lambda s: s.priority):
        if used + spec.min_width + pad > width:
            break  # dropped in order: never a less useful column in a more useful one's place
        chosen.append(spec)
        used += spec.min_width + pad
    while len(chosen) > CORE and sum(want(s) + pad for s in chosen) > width:
        dropped = chosen.pop()
        used -= dropped.min_width + pad
    widths = {spec.key: spec.min_width for spec in chosen}
    spare = width - used
    # the columns short of the least first: a time or a state is then whole, and the
    # name takes what is left before the flexible column does
    for spec in sorted(chosen, key=lambda s: want(s) - s.min_width):
        if spec.max_width is None:
            continue  # the flexible column takes what is left, below
        grow = min(spare, want(spec) - spec.min_width)
        widths[spec.key] += grow
        spare -= grow
    flexible = [spec for spec in chosen if spec.max_width is None]
    if chosen:  # the rest to the flexible column, or else to the most useful one
        widths[(flexible or chosen)[0].key] += spare
    order = {spec.key: i for i, spec in enumerate(specs)}
    return [(spec, widths[spec.key]) for spec in sorted(chosen, key=lambda s: order[s.key])]
