"""``python -m mission_control``: the same command line as ``mission-control``."""

from __future__ import annotations

from .cli import run

if __name__ == "__main__":
    run()
