"""One workstream on one screen: why it stopped, each attempt's outcome, its steps.

What the view knows (state, detail, changes, PR, conflicts) is shown at once;
what only the logs know (an error line, the finishing steps, how an older
attempt ended) is read in a thread from the tail of each attempt's log. Every
line from a log is an agent's words, so it is shown as plain text.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static

from ...engine.snapshot import WorkstreamView
from ...engine.states import TERMINAL, WsState
from ..format import clock
from ..untrusted import plain
from ..widgets.log_pane import attempt_path
from .reading_screen import ReadingScreen

TAIL_BYTES = 64 * 1024
"""How much of the end of each attempt's log is read."""
_STEP = "──── "
"""How the engine marks its own lines in an attempt's log (checks, commit, push, PR)."""
_ERROR = re.compile(r"(?i:traceback|fatal|panic|failed|exception)|Error\b|error:|✘")
"""An error line, not a line that talks of errors ("checking how errors are reported")."""


@dataclass(frozen=True, slots=True)
class AttemptLog:
    number: int
    last_line: str
    """The attempt's last words: its closing step, or its last line."""
    errors: tuple[str, ...]
    steps: tuple[str, ...]


def read_attempt(path: Path, number: int) -> AttemptLog:
    """The end of one attempt's log, cleaned (blocking: call it from a thread)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return AttemptLog(number, "(no log)", (), ())
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(size, TAIL_BYTES), max(0, size - TAIL_BYTES))
    finally:
        os.close(fd)
    lines = [plain(raw.decode("utf-8", errors="replace")).strip() for raw in data.splitlines()]
    lines = [line for line in lines if line]
    steps = tuple(line.removeprefix(_STEP) for line in lines if line.startswith(_STEP))
    errors = tuple(line for line in lines if _ERROR.search(line) and not line.startswith(_STEP))
    last = lines[-1].removeprefix(_STEP) if lines else "(empty log)"
    return AttemptLog(number, last[:300], errors[-5:], steps[-12:])


class DetailScreen(ReadingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,i", "close", "Close")]
    SCROLLED = VerticalScroll

    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > Vertical {
        width: 110; max-width: 100%; height: 90%;
        border: round $primary; background: $surface;
    }
    DetailScreen #detail-title { width: 100%; background: $panel; padding: 0 1; }
    DetailScreen VerticalScroll { padding: 0 1; }
    DetailScreen Static { width: 100%; margin-bottom: 1; }
    """

    def __init__(self, view: WorkstreamView, now: float) -> None:
        super().__init__()
        self.view = view
        self._now = now

    def compose(self) -> ComposeResult:
        view = self.view
        title = Content.assemble(
            (plain(view.ws_id), "bold"),
            "  ",
            plain(view.name),
            "  ",
            (view.state.value.replace("_", " "), "bold"),
            "  (esc closes)",
        )
        with Vertical():
            yield Label(title, id="detail-title")
            with VerticalScroll():
                yield Static(self._facts(), id="facts")
                yield Static("reading the logs…", id="logs")

    def _facts(self) -> Content:
        v = self.view
        rows: list[tuple[str, str]] = [
            ("task", v.task_id),
            ("why", v.detail or "-"),
            ("tool", v.tool),
            ("attempts", str(v.attempt) if v.attempt else "not started"),
            ("time", clock(v.elapsed(self._now)) if v.started_at else "-"),
            ("branch", v.branch),
            ("worktree", v.worktree),
        ]
        if v.ports:  # MC_PORT and MC_PORT_0..N-1 of its latest attempt
            rows.append(("ports", ", ".join(map(str, v.ports))))
        if v.exit_code is not None:
            rows.append(("exit code", str(v.exit_code)))
        if v.files_changed:
            rows.append(("changes", f"{v.files_changed} files, +{v.insertions} -{v.deletions}"))
        if v.pr_url:
            rows.append(("PR", v.pr_url))
        for other, files in v.conflicts:
            rows.append(("conflicts", f"with {other}: {', '.join(files)}"))
        if v.depends_on:
            rows.append(("depends on", ", ".join(v.depends_on)))
        return _rows(rows)

    def on_mount(self) -> None:
        self._read_logs()

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _read_logs(self) -> None:
        view = self.view
        attempts: list[AttemptLog] = []
        if view.log_path and view.attempt:
            current = Path(view.log_path)
            for number in range(1, view.attempt + 1):
                path = current if number == view.attempt else attempt_path(current, number)
                attempts.append(read_attempt(path, number))
        self.app.call_from_thread(self._show_logs, attempts)

    def _show_logs(self, attempts: list[AttemptLog]) -> None:
        if not attempts:
            self.query_one("#logs", Static).update("no attempt has run yet")
            return
        latest = attempts[-1]
        parts: list[tuple[str, str] | str | Content] = []
        ended = self.view.state in TERMINAL or self.view.state is WsState.INTERRUPTED
        parts.append(("Why it stopped\n" if ended else "Its last words\n", "bold $primary"))
        why = latest.errors or (latest.last_line,)
        parts.append(Content("\n".join(f"  {line}" for line in why)))
        parts.append(("\n\nAttempts\n", "bold $primary"))
        for attempt in attempts:
            outcome = (
                self.view.state.value.replace("_", " ")
                if attempt is latest
                else (attempt.errors[-1] if attempt.errors else attempt.last_line)
            )
            parts.append(Content(f"  #{attempt.number}  {outcome}\n"))
        parts.append(("\nSteps of the last attempt\n", "bold $primary"))
        steps = latest.steps or (
            "(none: checks, commit, push and PR follow an agent that succeeded)",
        )
        parts.append(Content("\n".join(f"  {step}" for step in steps)))
        self.query_one("#logs", Static).update(Content.assemble(*parts))


def _rows(rows: list[tuple[str, str]]) -> Content:
    width = max(len(k) for k, _ in rows)
    parts: list[tuple[str, str] | str] = []
    for index, (key, value) in enumerate(rows):
        if index:
            parts.append("\n")
        parts.extend([(key.ljust(width), "bold $accent"), "  ", plain(value)])
    return Content.assemble(*parts)
