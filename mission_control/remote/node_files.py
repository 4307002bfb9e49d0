"""Where a cluster node keeps an attempt's things, and the small files read and written whole."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any


def node_dir() -> Path:
    """Where a node keeps mirrors, worktrees and attempt logs (``MC_NODE_DIR`` overrides)."""
    configured = os.environ.get("MC_NODE_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    if cache.startswith("~"):
        cache = tempfile.gettempdir()
    return Path(cache) / "mission-control" / "node"


def node_name() -> str:
    return socket.gethostname()


def node_id() -> str:
    import ray  # only ever called inside an actor

    return str(ray.get_runtime_context().get_node_id())


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write the attempt's state file whole (a temporary file renamed over it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def remove_empty(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents below ``stop`` while they are empty."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def read_at(path: Path, offset: int, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(limit)
    except OSError:
        return b""
