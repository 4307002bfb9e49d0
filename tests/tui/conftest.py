"""Fixtures for the app's tests: an isolated config folder and demo logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Each test gets its own config folder, so a remembered theme never leaks between tests."""
    folder = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("MISSION_CONTROL_CONFIG_DIR", str(folder))
    yield folder


@pytest.fixture
def demo_logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    for ws in ("WS-07A", "WS-07B", "WS-07D", "WS-07E", "WS-07F"):
        (folder / f"{ws}.log").write_text(
            "".join(f"\x1b[32m{ws}\x1b[0m line {i}: editing paths.py\n" for i in range(200))
        )
    return folder
