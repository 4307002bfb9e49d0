"""Typed engine events: frozen, past-tense facts that views subscribe to.

The engine records a fact in the store, then publishes the event; the TUI and
the headless reporter are both plain subscribers. Log lines never ride here:
they go from the agent straight to its log file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .states import WsState


@dataclass(frozen=True, slots=True)
class Tokens:
    """Tokens an agent used: ``input`` counts cached input too, ``cached`` is that part."""

    input: int = 0
    output: int = 0
    cached: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input, self.output + other.output, self.cached + other.cached
        )

    @property
    def total(self) -> int:
        return self.input + self.output


def spent(uses: Iterable[tuple[Tokens, float | None]]) -> tuple[Tokens, float | None]:
    """Tokens and USD over ``uses`` (USD None: none of them reported a cost)."""
    tokens = Tokens()
    costs: list[float] = []
    for used, cost in uses:
        tokens += used
        if cost is not None:
            costs.append(cost)
    return tokens, (sum(costs) if costs else None)


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    plan_path: str
    at: float


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    ok: bool
    at: float
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    run_id: str
    phase_id: str
    at: float


@dataclass(frozen=True, slots=True)
class PhaseFinished:
    run_id: str
    phase_id: str
    ok: bool
    at: float


@dataclass(frozen=True, slots=True)
class PhaseLandingStep:
    """A step of a ``land: auto`` phase's landing: a merge, a check, the push, its end."""

    run_id: str
    phase_id: str
    kind: str
    ok: bool
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class WorkstreamStateChanged:
    run_id: str
    task_id: str
    """Qualified id, ``PHASE::WS``."""
    old: WsState
    new: WsState
    at: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    run_id: str
    task_id: str
    attempt: int
    pid: int
    log_path: str
    argv: tuple[str, ...]
    at: float
    ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    run_id: str
    task_id: str
    attempt: int
    exit_code: int | None
    signal: int | None
    at: float


@dataclass(frozen=True, slots=True)
class WorkstreamStalled:
    """An attempt wrote nothing for its ``stall_minutes`` (``stalled=True``) or wrote again."""

    run_id: str
    task_id: str
    stalled: bool
    idle_seconds: float
    at: float


@dataclass(frozen=True, slots=True)
class AgentReported:
    """What the attempt's agent says it is doing and has used. ``tokens`` and ``cost_usd``
    are the workstream's totals over all its attempts (``cost_usd`` None: no figure yet)."""

    run_id: str
    task_id: str
    attempt: int
    session_id: str | None
    model: str | None
    doing: str | None
    needs_input: str | None
    tokens: Tokens
    cost_usd: float | None
    at: float


@dataclass(frozen=True, slots=True)
class FinishStepDone:
    """One finishing step (check, commit, push, pr) ended."""

    run_id: str
    task_id: str
    step: str
    ok: bool
    detail: str
    at: float


@dataclass(frozen=True, slots=True)
class WorkstreamResultUpdated:
    """What the workstream produced so far: head commit, diffstat, PR."""

    run_id: str
    task_id: str
    head: str | None
    files_changed: int
    insertions: int
    deletions: int
    pr_url: str | None
    at: float


@dataclass(frozen=True, slots=True)
class ConflictsForecast:
    """Pairs of branches (or a branch and its base) whose trial merge conflicts."""

    run_id: str
    task_id: str
    conflicts: tuple[tuple[str, tuple[str, ...]], ...]
    """(other task id or ``base:<branch>``, conflicting files) for each conflict."""
    at: float


@dataclass(frozen=True, slots=True)
class ProcessSample:
    cpu_percent: float
    rss_bytes: int
    processes: int


@dataclass(frozen=True, slots=True)
class MetricsSampled:
    """One batch per sampler tick for every running attempt's process tree."""

    run_id: str
    samples: dict[str, ProcessSample] = field(default_factory=dict)
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class EngineWarned:
    """Something the user should know that is not a state change."""

    run_id: str
    task_id: str | None
    message: str
    at: float


Event = (
    RunStarted
    | RunFinished
    | PhaseStarted
    | PhaseFinished
    | PhaseLandingStep
    | WorkstreamStateChanged
    | AttemptStarted
    | AttemptEnded
    | WorkstreamStalled
    | AgentReported
    | FinishStepDone
    | WorkstreamResultUpdated
    | ConflictsForecast
    | MetricsSampled
    | EngineWarned
)
