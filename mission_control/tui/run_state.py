"""What the header says of the run, worked out from the app's snapshot.

The app folds engine events into its snapshot; this module reads it: whether an
event is news (an attached run re-publishes states the snapshot already holds),
when the run's work has ended (the app's engine stays for retries rather than
finish the run), and the ``RunSummary`` the header renders. Pure but for the
monotonic clock the end watch reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..engine import events as ev
from ..engine.snapshot import RunSnapshot, run_totals
from ..engine.states import ACTIVE, FAILED_STATES, WsState
from .widgets.run_header import RunSummary
from .widgets.workstream_table import needs_attention

SETTLE_SECONDS = 1.5
"""How long nothing must run or wait before the header calls the run's work ended."""


def is_news(snapshot: RunSnapshot, event: ev.Event) -> bool:
    """Whether ``event`` tells the app something its snapshot does not already say: a
    resumed or attached run publishes states the app read with the snapshot, and their
    toasts were shown (or were moot) long ago."""
    match event:
        case ev.WorkstreamStateChanged(task_id=task_id, new=new):
            view = snapshot.workstreams.get(task_id)
            return view is None or view.state is not new
        case ev.RunFinished():
            return not snapshot.finished
        case _:
            return True


@dataclass(slots=True)
class EndWatch:
    """All work has ended, though the engine stays for retries: nothing runs or waits for
    a slot, and it has been so for ``SETTLE_SECONDS``, so the moment between one
    workstream's end and the next one's start never reads as the end."""

    ended_at: float | None = None
    """When the engine said the run finished (``RunFinished``)."""
    cancelled: bool = False
    _quiet_since: float | None = None

    def heard(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunFinished):
            self.ended_at = event.at
            self.cancelled = event.cancelled
        elif isinstance(event, ev.RunStarted):  # a resumed run goes on
            self.ended_at = None
            self.cancelled = False

    def check(self, snapshot: RunSnapshot) -> tuple[bool, bool]:
        """(the run's work has ended, the work went quiet just now: look again after
        ``SETTLE_SECONDS``)."""
        if snapshot.finished:
            return True, False
        views = snapshot.workstreams.values()
        busy = any(v.state in ACTIVE or v.state is WsState.QUEUED for v in views)
        if busy or not any(v.ended_at for v in views):
            self._quiet_since = None
            return False, False
        mark = time.monotonic()
        fresh = self._quiet_since is None
        if self._quiet_since is None:
            self._quiet_since = mark
        return mark - self._quiet_since >= SETTLE_SECONDS, fresh


def summarize(
    snapshot: RunSnapshot, now: float, finished: bool, end: EndWatch, shown: str
) -> RunSummary:
    """The header's line: counts, the clock (stopped at the last end once finished)."""
    views = snapshot.workstreams.values()
    stop = now
    if finished:
        last = max((v.ended_at or 0.0 for v in views), default=0.0)
        stop = snapshot.finished_at or end.ended_at or last or now
    failed = sum(1 for v in views if v.state in FAILED_STATES)
    tokens, cost = run_totals(snapshot)
    return RunSummary(
        plan=snapshot.plan_name,
        backend=snapshot.backend,
        phase=snapshot.current_phase or "",
        run_id=snapshot.run_id,
        elapsed=max(0.0, stop - snapshot.started_at) if snapshot.started_at else 0.0,
        succeeded=sum(1 for v in views if v.state is WsState.SUCCEEDED),
        total=len(snapshot.workstreams),
        failed=failed,
        running=sum(1 for v in views if v.state in ACTIVE),
        skipped=sum(1 for v in views if v.state is WsState.SKIPPED),
        attention=sum(1 for v in views if needs_attention(v)),
        finished=finished,
        ok=snapshot.ok if snapshot.finished else not failed,
        cancelled=end.cancelled,
        shown=shown,
        waiting=sum(1 for v in views if v.state is WsState.NEEDS_INPUT),
        cost_usd=cost,
        tokens=tokens.total,
    )
