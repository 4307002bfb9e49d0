"""The backends by name and the module that registers each, apart from the seam itself so
the command line can offer the names without importing the engine."""

from __future__ import annotations

from typing import Final

BACKEND_MODULES: Final[dict[str, str]] = {
    "local": "mission_control.engine.local_backend",
    "ray": "mission_control.remote.ray_backend",
}
"""Where each backend lives, like an entry point: importing the module registers it."""

BACKENDS: Final = tuple(BACKEND_MODULES)
