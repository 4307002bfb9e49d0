"""The run's one-line summary: plan, phase, run id, elapsed time, progress, failures.

The app hands it a ``RunSummary`` (attributes down); the header only renders.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from ..format import duration, tokens_text
from ..untrusted import markup_escape


@dataclass(frozen=True, slots=True)
class RunSummary:
    plan: str = ""
    backend: str = "local"
    phase: str = ""
    run_id: str = ""
    elapsed: float = 0.0
    succeeded: int = 0
    total: int = 0
    failed: int = 0
    running: int = 0
    skipped: int = 0
    attention: int = 0
    """Workstreams that need the user: asking, failed, stalled, or forecast to conflict."""
    finished: bool = False
    ok: bool | None = None
    cancelled: bool = False
    shown: str = ""
    """The table's filter when it hides rows ("failed", "attention", "text 'x'")."""
    waiting: int = 0
    """Workstreams whose agent waits for an answer."""
    cost_usd: float | None = None
    tokens: int = 0


class RunHeader(Widget):
    DEFAULT_CSS = """
    RunHeader {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    summary: reactive[RunSummary] = reactive(RunSummary, layout=False)
    """What to show; replaced whole, so equal summaries do not repaint."""

    def render(self) -> RenderResult:
        s = self.summary
        parts = [
            f"[b]{markup_escape(s.plan)}[/b]",
            *([f"[$accent]on {markup_escape(s.backend)}[/]"] if s.backend != "local" else []),
        ]
        if not s.finished:
            parts.append(f"[b]{markup_escape(s.phase or '-')}[/b]")
        parts.append(f"[$success]✔ {s.succeeded}/{s.total}[/]")
        if s.running:
            parts.append(f"[$primary]▶ {s.running}[/]")
        parts.append(f"[$error]✘ {s.failed}[/]" if s.failed else "[$text-muted]✘ 0[/]")
        if s.attention:
            parts.append(f"[b $warning]! {s.attention} need you[/]")
        if s.waiting:  # of those, the agents that asked a question (m answers)
            parts.append(f"[b $warning]? {s.waiting} asking[/]")
        if s.cost_usd is not None:
            parts.append(f"${s.cost_usd:.2f}")
        elif s.tokens:
            parts.append(f"{tokens_text(s.tokens)} tok")
        if s.finished:
            parts.append(f"[b]{_ending(s)}[/b] in {duration(s.elapsed)}")
        else:
            parts.append(duration(s.elapsed))
        if s.shown:
            parts.append(f"[reverse] showing {markup_escape(s.shown)} [/]")
        line = Content.from_markup("  ".join(parts))
        run = Content.from_markup(f"  [$text-muted]run {markup_escape(s.run_id)}[/]")
        if line.cell_length + run.cell_length <= self.content_size.width:
            line += run  # the run id only where it fits whole
        return line


def _ending(s: RunSummary) -> str:
    """What became of a finished run, in one phrase."""
    not_run = s.total - s.succeeded - s.failed - s.skipped - s.waiting
    counts = [f"{s.succeeded} succeeded"]
    if s.failed:
        counts.append(f"{s.failed} failed")
    if s.waiting:
        counts.append(f"{s.waiting} waiting for an answer")
    if s.skipped:
        counts.append(f"{s.skipped} skipped")
    if not_run > 0:
        counts.append(f"{not_run} not run")
    if s.cancelled:
        head = "[$warning]run stopped[/]"
    elif s.ok:
        head = "[$success]run finished[/]"
    else:
        head = "[$error]run finished with failures[/]"
    return f"{head}: {', '.join(counts)}"
