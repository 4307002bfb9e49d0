"""Messages the app posts to itself from other threads (engine bus, workers).

Engine events arrive as ``EngineEventPosted``; metrics batches are frequent
and each one carries the whole picture, so a newer batch replaces an older one
still in the queue. State changes are never coalesced: every one is a fact the
views and notifications need.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ..engine import events as ev
from ..engine.events import Event


class EngineEventPosted(Message):
    """One engine event, posted by the bridge from whatever thread published it."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # A newer batch replaces an older one only for the same workstreams: a remote
        # backend sends one workstream's sample at a time.
        return (
            isinstance(message, EngineEventPosted)
            and isinstance(self.event, ev.MetricsSampled)
            and isinstance(message.event, ev.MetricsSampled)
            and self.event.samples.keys() == message.event.samples.keys()
        )


class EngineStopped(Message):
    """The engine's ``run()`` returned (``ok``) or raised (``error``)."""

    def __init__(self, ok: bool | None, error: str | None = None) -> None:
        super().__init__()
        self.ok = ok
        self.error = error


@dataclass(frozen=True, slots=True)
class LogProbe:
    """What the table knows of one attempt's log: its size, age and last line."""

    size: int
    mtime: float
    last_line: str


class LogsProbed(Message):
    """New probes of the logs that grew (the others keep theirs), so never coalesced."""

    def __init__(self, probes: dict[str, LogProbe]) -> None:
        super().__init__()
        self.probes = probes
