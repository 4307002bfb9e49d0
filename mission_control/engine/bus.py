"""The event bus: the engine publishes, views subscribe.

The bus also keeps the run's snapshot current by folding in every event under
the same lock it publishes under, so ``subscribe_with_snapshot`` hands out a
state and a subscription with no event missed or counted twice. Callbacks must
not block: the TUI posts a message, the headless reporter prints a line.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable

from .events import Event
from .snapshot import RunSnapshot, apply_event

_log = logging.getLogger(__name__)

Callback = Callable[[Event], None]


class EventBus:
    def __init__(self, snapshot: RunSnapshot) -> None:
        self._snapshot = snapshot
        self._lock = threading.RLock()
        self._subscribers: list[Callback] = []

    def publish(self, event: Event) -> None:
        with self._lock:
            apply_event(self._snapshot, event)
            subscribers = list(self._subscribers)
            for callback in subscribers:
                try:
                    callback(event)
                except Exception:  # a broken view must not stop the engine
                    _log.exception("event subscriber failed on %r", event)

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def subscribe_with_snapshot(self, callback: Callback) -> tuple[RunSnapshot, Callable[[], None]]:
        with self._lock:
            return self.snapshot(), self.subscribe(callback)

    def snapshot(self) -> RunSnapshot:
        """A deep copy: the caller may fold events into it without touching ours."""
        with self._lock:
            return copy.deepcopy(self._snapshot)
