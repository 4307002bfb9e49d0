"""The one place where the engine's world (any thread) meets the app's (its loop).

The bridge takes a snapshot and a subscription under the bus lock, then turns
each event into a message with ``App.post_message``, which is thread-safe. It
never blocks the publisher: posting only queues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from textual.app import App

from ..engine.events import Event
from ..engine.snapshot import EngineControl, RunSnapshot
from .messages import EngineEventPosted


class TuiEngine(EngineControl, Protocol):
    """What the app needs beyond ``EngineControl``: running it, detaching, and diffs."""

    async def run(self) -> bool: ...

    async def detach(self) -> None:
        """Stop supervising and leave the agents running (a later resume adopts them)."""
        ...

    def diff(self, task_id: str) -> str:
        """The worktree's diff against its base; blocking, so called from a thread."""
        ...


class EngineBridge:
    """Subscribes an app to an engine; ``close`` unsubscribes."""

    def __init__(self, engine: EngineControl, app: App[Any]) -> None:
        self._engine = engine
        self._app = app
        self._unsubscribe: Callable[[], None] | None = None

    def open(self) -> RunSnapshot:
        snapshot, self._unsubscribe = self._engine.subscribe_with_snapshot(self._on_event)
        return snapshot

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: Event) -> None:
        self._app.post_message(EngineEventPosted(event))
