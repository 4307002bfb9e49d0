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
    finished: bool = False
    ok: bool | None = None
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
            f"[b]{markup_escape(s.phase or '-')}[/b]",
            f"[$success]✔ {s.succeeded}/{s.total}[/]",
        ]
        if s.running:
            parts.append(f"[$primary]▶ {s.running}[/]")
        parts.append(f"[$error]✘ {s.failed}[/]" if s.failed else "[$text-muted]✘ 0[/]")
        if s.waiting:
            parts.append(f"[b $warning]? {s.waiting} need you[/]")
        if s.cost_usd is not None:
            parts.append(f"${s.cost_usd:.2f}")
        elif s.tokens:
            parts.append(f"{tokens_text(s.tokens)} tok")
        parts.append(duration(s.elapsed))
        if s.finished:
            parts.append("[b $success]done[/]" if s.ok else "[b $error]ended with failures[/]")
        parts.append(f"[$text-muted]run {markup_escape(s.run_id)}[/]")
        return Content.from_markup("  ".join(parts))
