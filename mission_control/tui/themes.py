"""Themes as YAML files, loaded by name; the user's choice remembered across runs.

Shipped themes live in the repository's ``themes/`` folder and the user may add
more in ``<config>/mission-control/themes/``. Loading returns the themes and
the problems found, never raises: a bad theme file is reported in a
notification and the app starts with the others (the loader-returns-results
shape of posting's ``UserThemeLoadResult``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "mission-dark"

_HERE = Path(__file__).resolve()
# A checkout keeps themes/ at the top; an installed wheel carries them inside the package.
SHIPPED_THEMES_DIR = next(
    (d for d in (_HERE.parents[2] / "themes", _HERE.parents[1] / "themes") if d.is_dir()),
    _HERE.parents[2] / "themes",
)

_COLOUR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_KEYS = {"name", "dark", "variables", "luminosity_spread", "text_alpha", *_COLOUR_KEYS}


@dataclass(slots=True)
class ThemeLoadResult:
    themes: dict[str, Theme] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """One line per bad file: the file, what is wrong, and how to fix it."""


def config_dir() -> Path:
    """``$MISSION_CONTROL_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/mission-control``."""
    explicit = os.environ.get("MISSION_CONTROL_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mission-control"


def theme_dirs() -> list[Path]:
    return [SHIPPED_THEMES_DIR, config_dir() / "themes"]


def load_theme_file(path: Path) -> Theme:
    """Parse one theme file; raises ``ValueError`` with a one-line message."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}{where}: not valid YAML — check the indentation") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a theme is a mapping of keys such as name: and primary:")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(
            f"{path}: unknown key {unknown[0]!r} — allowed: {', '.join(sorted(_KEYS))}"
        )
    name = data.get("name") or path.stem
    if "primary" not in data:
        raise ValueError(f"{path}: missing 'primary' — every theme needs a primary colour")
    colours: dict[str, str] = {}
    for key in _COLOUR_KEYS:
        if key in data and data[key] is not None:
            value = str(data[key])
            try:
                Color.parse(value)
            except ColorParseError:
                raise ValueError(
                    f"{path}: {key}: {value!r} is not a colour — use e.g. '#1e88e5' or 'red'"
                ) from None
            colours[key] = value
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ValueError(f"{path}: variables: must be a mapping of name: value")
    return Theme(
        name=str(name),
        primary=colours["primary"],
        secondary=colours.get("secondary"),
        warning=colours.get("warning"),
        error=colours.get("error"),
        success=colours.get("success"),
        accent=colours.get("accent"),
        foreground=colours.get("foreground"),
        background=colours.get("background"),
        surface=colours.get("surface"),
        panel=colours.get("panel"),
        boost=colours.get("boost"),
        dark=bool(data.get("dark", True)),
        luminosity_spread=float(data.get("luminosity_spread", 0.15)),
        text_alpha=float(data.get("text_alpha", 0.95)),
        variables={str(k): str(v) for k, v in variables.items()},
    )


def load_themes(dirs: list[Path] | None = None) -> ThemeLoadResult:
    """Every ``*.yaml``/``*.yml`` theme in ``dirs``; later folders override earlier ones."""
    result = ThemeLoadResult()
    for folder in dirs if dirs is not None else theme_dirs():
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                result.errors.append(str(exc))
                continue
            result.themes[theme.name] = theme
    return result


def _settings_path() -> Path:
    return config_dir() / "tui.json"


def remembered_theme() -> str | None:
    try:
        data = json.loads(_settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("theme") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def remember_theme(name: str) -> None:
    """Store the choice; a read-only config folder only loses the memory, not the run."""
    path = _settings_path()
    try:
        data: dict[str, Any] = {}
        if path.exists():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                data = loaded
        data["theme"] = name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except (OSError, ValueError):
        pass
