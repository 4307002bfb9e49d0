"""Themes: shipped files load by name, a bad file is reported not fatal, the choice is kept."""

from __future__ import annotations

from pathlib import Path

from mission_control.tui import themes
from mission_control.tui.app import build_app
from tests.tui.static_engine import T0, StaticEngine, demo_snapshot

SHIPPED = {"mission-dark", "mission-light", "mission-high-contrast"}


def _app(theme: str | None = None):  # type: ignore[no-untyped-def]
    return build_app(
        StaticEngine(demo_snapshot()),
        None,
        run_engine=False,
        clock=lambda: T0,
        theme=theme,
        probe_logs=False,
    )


def test_shipped_themes_load_cleanly() -> None:
    result = themes.load_themes([themes.SHIPPED_THEMES_DIR])
    assert result.errors == []
    assert set(result.themes) >= SHIPPED
    assert result.themes["mission-light"].dark is False
    assert result.themes["mission-high-contrast"].background == "#000000"


def test_bad_theme_files_are_reported_with_their_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nprimary: [unclosed\n")
    (tmp_path / "nocolour.yaml").write_text("name: nocolour\nprimary: not-a-colour\n")
    (tmp_path / "typo.yaml").write_text("name: typo\nprimary: '#112233'\nbackgroud: '#000000'\n")
    (tmp_path / "good.yaml").write_text("name: good\nprimary: '#112233'\ndark: false\n")
    result = themes.load_themes([tmp_path])
    assert set(result.themes) == {"good"}
    joined = "\n".join(result.errors)
    assert "broken.yaml:" in joined and "not valid YAML" in joined
    assert "nocolour.yaml" in joined and "not a colour" in joined
    assert "typo.yaml" in joined and "backgroud" in joined
    assert len(result.errors) == 3


async def test_app_starts_with_a_bad_user_theme_and_says_so(_isolated_config: Path) -> None:
    folder = _isolated_config / "themes"
    folder.mkdir()
    (folder / "bad.yaml").write_text("primary: 12\n: :\n")
    (folder / "mine.yaml").write_text("name: mine\nprimary: '#aa5500'\n")
    app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.theme == themes.DEFAULT_THEME
        assert "mine" in app.available_themes
        assert "textual-dark" in app.available_themes  # Textual's own stay available
        messages = [n.message for n in app._notifications]
        assert any("bad.yaml" in m for m in messages)


async def test_unknown_theme_name_falls_back_and_is_reported() -> None:
    app = _app("no-such-theme")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.theme == themes.DEFAULT_THEME
        assert any("no-such-theme" in n.message for n in app._notifications)


async def test_theme_choice_is_remembered(_isolated_config: Path) -> None:
    app = _app("mission-high-contrast")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.theme = "mission-light"
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert themes.remembered_theme() == "mission-light"
    again = _app()
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert again.theme == "mission-light"


async def test_theme_change_recolours_the_table(_isolated_config: Path) -> None:
    app = _app("mission-dark")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        before = app.table.get_cell("PH-07::WS-07D", "status").style
        app.theme = "mission-light"
        await pilot.pause()
        after = app.table.get_cell("PH-07::WS-07D", "status").style
        assert before != after
