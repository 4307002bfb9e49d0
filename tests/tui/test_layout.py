"""The table's columns fit the terminal, most useful first; the DAG is as wide as its graph."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mission_control.tui.app import build_app
from mission_control.tui.columns import CELL_PADDING, COLUMNS, CORE, FLEX_WANT, fit_columns
from tests.tui.static_engine import T0, StaticEngine, demo_snapshot

BY_PRIORITY = [c.key for c in sorted(COLUMNS, key=lambda c: c.priority)]
CORE_KEYS = {"status", "name", "elapsed", "last"}


def test_the_core_columns_are_the_most_useful() -> None:
    assert set(BY_PRIORITY[:CORE]) == CORE_KEYS
    assert sum(1 for c in COLUMNS if c.max_width is None) == 1  # one flexible column


@given(
    width=st.integers(min_value=0, max_value=400),
    wanted=st.dictionaries(st.sampled_from([c.key for c in COLUMNS]), st.integers(0, 200)),
)
def test_fitted_columns_never_overflow_and_drop_the_least_useful_first(
    width: int, wanted: dict[str, int]
) -> None:
    fitted = fit_columns(COLUMNS, wanted, width)
    keys = [spec.key for spec, _ in fitted]
    assert sum(w + 2 * CELL_PADDING for _, w in fitted) <= width
    assert set(keys) == set(BY_PRIORITY[: len(keys)])  # a prefix of the priority order
    assert keys == [c.key for c in COLUMNS if c.key in keys]  # in display order
    for spec, w in fitted:
        assert w >= spec.min_width
        if spec.max_width is not None:
            assert w <= spec.max_width or len(fitted) <= CORE


def test_at_80_columns_the_core_columns_still_show() -> None:
    fitted = fit_columns(COLUMNS, {"name": 30, "status": 11, "elapsed": 7}, 56)
    assert {spec.key for spec, _ in fitted} == CORE_KEYS


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
async def test_table_fits_the_terminal_without_horizontal_scrolling(
    demo_logs: Path, size: tuple[int, int]
) -> None:
    app = build_app(
        StaticEngine(demo_snapshot(demo_logs)), None, run_engine=False, clock=lambda: T0
    )
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        table = app.table
        shown = [str(key.value) for key in table.columns]
        assert set(shown) >= CORE_KEYS
        assert table.max_scroll_x == 0  # never cut mid-table
        widths = sum(c.get_render_width(table) for c in table.columns.values())
        assert widths <= table.scrollable_content_region.width
        if size[0] >= 200:
            assert len(shown) >= 10
            assert table.columns["last"].width >= FLEX_WANT  # type: ignore[index]
            names = [table.get_cell(t, "name").plain for t in table.visible_tasks]
            assert all(table.columns["name"].width >= len(n) for n in names)  # type: ignore[index]
        # the DAG is as wide as its graph (plus border and padding), not a third of the screen
        assert app.dag.outer_size.width <= app.dag.virtual_size.width + 4


async def test_resizing_drops_and_brings_back_columns(demo_logs: Path) -> None:
    app = build_app(
        StaticEngine(demo_snapshot(demo_logs)), None, run_engine=False, clock=lambda: T0
    )
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause(0.2)
        wide = len(app.table.columns)
        selected = app.selected_task
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert len(app.table.columns) < wide
        assert {str(k.value) for k in app.table.columns} >= CORE_KEYS
        assert app.table.max_scroll_x == 0
        assert app.selected_task == selected  # the cursor stays on its workstream
        await pilot.resize_terminal(200, 50)
        await pilot.pause(0.2)
        assert len(app.table.columns) == wide


async def test_the_dag_starts_hidden_below_100_columns_and_g_toggles_it(demo_logs: Path) -> None:
    app = build_app(
        StaticEngine(demo_snapshot(demo_logs)), None, run_engine=False, clock=lambda: T0
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not app.dag.display
        await pilot.press("g")
        await pilot.pause()
        assert app.dag.display and app.dag.region.width > 0
        await pilot.resize_terminal(120, 40)  # the user's choice outlasts a resize
        await pilot.pause()
        await pilot.press("g")
        await pilot.pause()
        assert not app.dag.display
        assert {str(k.value) for k in app.table.columns} >= CORE_KEYS


async def test_the_dag_shows_every_phase_as_a_band() -> None:
    from mission_control.engine.snapshot import PhaseView

    snapshot = demo_snapshot()
    ids = list(snapshot.workstreams)
    for task_id in ids[5:]:  # the second half moves to a phase of its own
        view = snapshot.workstreams[task_id]
        view.phase_id = "PH-08"
        view.depends_on = ()
    snapshot.phases = [
        PhaseView("PH-07", "Path abstraction", 3, tuple(ids[:5])),
        PhaseView("PH-08", "Cleanup", 3, tuple(ids[5:])),
    ]
    app = build_app(StaticEngine(snapshot), None, run_engine=False, clock=lambda: T0)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        layout = app.dag._layout
        assert set(layout.nodes) == set(ids)  # the whole run, not one phase
        assert sorted(layout.titles.values()) == ["PH-08 Cleanup", "▶ PH-07 Path abstraction"]
        bands = {layout.nodes[t].band for t in ids[:5]}, {layout.nodes[t].band for t in ids[5:]}
        assert bands == ({0}, {1})
        second_title = max(layout.titles)
        assert all(layout.nodes[t].row > second_title for t in ids[5:])
        assert all(layout.nodes[t].row < second_title for t in ids[:5])
        lines = ["".join(s.text for s in strip) for strip in app.screen._compositor.render_strips()]
        assert any("PH-08 Cleanup" in line for line in lines)
        # moving down the DAG crosses from the first phase into the second
        app.dag.focus()
        nodes = app.dag._layout.nodes
        app.dag.selected = max(ids[:5], key=lambda t: (nodes[t].layer, nodes[t].row))
        await pilot.press("j")
        await pilot.pause()
        assert app.dag._layout.nodes[app.selected_task or ""].band == 1


def test_quiet_does_not_count_while_paused() -> None:
    from mission_control.tui.columns import COLUMN_BY_KEY

    views = demo_snapshot().workstreams
    paused = views["PH-07::WS-07E"]
    paused.last_output_at = T0 - 300
    assert COLUMN_BY_KEY["idle"].cell(paused, None, T0) == ("-", "workstream-table--muted")
    running = views["PH-07::WS-07B"]
    assert COLUMN_BY_KEY["idle"].cell(running, None, T0)[0] == "3s"


async def test_a_cell_that_shrinks_back_does_not_rebuild_the_table(demo_logs: Path) -> None:
    engine = StaticEngine(demo_snapshot(demo_logs))
    app = build_app(engine, None, run_engine=False, clock=lambda: T0, probe_logs=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        table = app.table
        rebuilds: list[int] = []
        original = table._rebuild

        def counting(rows: list[str]) -> None:
            rebuilds.append(len(rows))
            original(rows)

        table._rebuild = counting  # type: ignore[method-assign]
        view = app.run_snapshot.workstreams["PH-07::WS-07C"]
        for name in ("a name longer than the others", "short", "a name longer than the others"):
            view.name = name
            app.run_screen.schedule_refresh()
            await pilot.pause()
        assert len(rebuilds) <= 1  # the first widening at most; never back and forth
