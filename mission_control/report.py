"""Headless views of a run: a line per state change, a summary table, a JSON feed.

Like the TUI, these are plain bus subscribers folding events into their own
snapshot; the engine does not know they exist. Callbacks only format and
write a line, so they never hold the engine up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from enum import Enum
from typing import IO, Any

from .engine import events as ev
from .engine.events import Tokens
from .engine.snapshot import RunSnapshot, WorkstreamView, apply_event, run_totals
from .engine.states import ICONS, WsState


def _clock_text(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class LineReporter:
    """Prints one line per state change and finishing step, then a summary table."""

    def __init__(self, snapshot: RunSnapshot, out: IO[str], *, color: bool = False) -> None:
        self.snapshot = snapshot
        self._out = out
        self._color = color
        self._run_notes: list[str] = []
        """Warnings about the whole run (a spent budget): repeated under the summary."""

    def __call__(self, event: ev.Event) -> None:
        apply_event(self.snapshot, event)
        line = self._line(event)
        if line is not None:
            self._out.write(line + "\n")
            self._out.flush()

    def _line(self, event: ev.Event) -> str | None:
        match event:
            case ev.WorkstreamStateChanged(task_id=task_id, new=new, at=at, detail=detail):
                state = self._paint(new)
                tail = f"  {detail}" if detail else ""
                return f"{_clock_text(at)}  {task_id:<24} {state}{tail}"
            case ev.FinishStepDone(task_id=task_id, step=step, ok=ok, detail=detail, at=at):
                mark = "ok" if ok else "failed"
                return f"{_clock_text(at)}  {task_id:<24} {step} {mark}: {detail}"
            case ev.WorkstreamStalled(task_id=task_id, stalled=True, idle_seconds=idle, at=at):
                return (
                    f"{_clock_text(at)}  {task_id:<24} stalled: no output for "
                    f"{format_duration(idle)}"
                )
            case ev.ConflictsForecast(task_id=task_id, conflicts=conflicts, at=at) if conflicts:
                parts = "; ".join(f"{other}: {', '.join(files)}" for other, files in conflicts)
                return f"{_clock_text(at)}  {task_id:<24} conflicts forecast with {parts}"
            case ev.PhaseStarted(phase_id=phase_id, at=at):
                return f"{_clock_text(at)}  phase {phase_id} started"
            case ev.PhaseFinished(phase_id=phase_id, ok=ok, at=at):
                return f"{_clock_text(at)}  phase {phase_id} {self._phase_end(phase_id, ok)}"
            case ev.PhaseLandingStep(phase_id=phase_id, kind=kind, ok=ok, text=text, at=at):
                mark = "ok" if ok else "FAILED"
                return f"{_clock_text(at)}  phase {phase_id} landing: {kind} {mark}: {text}"
            case ev.EngineWarned(task_id=task_id, message=message, at=at):
                if task_id is None:
                    self._run_notes.append(message)
                return f"{_clock_text(at)}  warning: {message}"
            case ev.RunStarted(run_id=run_id, at=at):
                return f"{_clock_text(at)}  run {run_id} started ({self.snapshot.plan_name})"
            case _:
                return None

    def _paint(self, state: WsState) -> str:
        text = f"{ICONS[state]} {state.value}"
        if not self._color:
            return f"{text:<13}"
        code = _COLORS.get(state, "0")
        return f"\x1b[{code}m{text:<13}\x1b[0m"

    def summary(self, now: float | None = None) -> str:
        text = format_summary(self.snapshot, now if now is not None else time.time())
        return "\n".join([text, *self._run_notes])

    def _phase_end(self, phase_id: str, ok: bool) -> str:
        if ok:
            return "finished"
        views = [v for v in self.snapshot.workstreams.values() if v.phase_id == phase_id]
        if any(v.state is WsState.NEEDS_INPUT for v in views):
            return "waits for an answer"
        return "had failures"


_COLORS = {
    WsState.SUCCEEDED: "32",
    WsState.FAILED: "31",
    WsState.TIMED_OUT: "31",
    WsState.KILLED: "31",
    WsState.BLOCKED: "33",
    WsState.SKIPPED: "36",
    WsState.RUNNING: "34",
    WsState.PAUSED: "33",
    WsState.INTERRUPTED: "35",
    WsState.NEEDS_INPUT: "33",
}


def format_summary(snapshot: RunSnapshot, now: float) -> str:
    """A fixed-width table of every workstream, then one line of totals."""
    agents = any(v.tokens.total or v.cost_usd is not None for v in snapshot.workstreams.values())
    head: tuple[str, ...] = ("WORKSTREAM", "STATE", "TRY", "TIME", "CHANGES", "PR", "DETAIL")
    if agents:
        head = (*head[:5], "USED", *head[5:])
    rows: list[tuple[str, ...]] = [head]
    for view in snapshot.workstreams.values():
        row = _summary_row(view, now)
        rows.append((*row[:5], spent_text(view.tokens, view.cost_usd), *row[5:]) if agents else row)
    lines = format_table(rows)
    counts: dict[str, int] = {}
    for view in snapshot.workstreams.values():
        counts[view.state.value] = counts.get(view.state.value, 0) + 1
    total = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    tokens, cost = run_totals(snapshot)
    if tokens.total or cost is not None:
        total += f"; {spent_text(tokens, cost)}"
    lines.append(f"run {snapshot.run_id}: {total}")
    lines += waiting_lines(snapshot)
    return "\n".join(lines)


def spent_text(tokens: Tokens, cost: float | None) -> str:
    """``12,345 tok $0.0123``, or ``-`` when nothing was used."""
    if not tokens.total and cost is None:
        return "-"
    text = f"{tokens.total:,} tok"
    return f"{text} ${cost:.4f}" if cost is not None else text


def waiting_lines(snapshot: RunSnapshot) -> list[str]:
    """What waits for the user: each agent's question, with the command that answers it."""
    return [
        f"{view.task_id} needs input: {view.detail or view.needs_input}"
        f" (answer: mission-control continue {view.task_id} --message '...')"
        for view in snapshot.workstreams.values()
        if view.state is WsState.NEEDS_INPUT
    ]


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell; the last column is left as long as it is."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def _summary_row(view: WorkstreamView, now: float) -> tuple[str, ...]:
    changes = f"+{view.insertions} -{view.deletions}" if view.files_changed else "-"
    return (
        view.task_id,
        view.state.value,
        str(view.attempt),
        format_duration(view.elapsed(now)),
        changes,
        view.pr_url or "-",
        view.detail,
    )


class JsonReporter:
    """Writes every event as one JSON object per line (for scripts)."""

    def __init__(self, out: IO[str], *, skip: Callable[[ev.Event], bool] | None = None) -> None:
        self._out = out
        self._skip = skip

    def __call__(self, event: ev.Event) -> None:
        if self._skip is not None and self._skip(event):
            return
        payload = {"event": type(event).__name__, **_plain(event)}
        self._out.write(json.dumps(payload, default=str) + "\n")
        self._out.flush()


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
