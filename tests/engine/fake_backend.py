"""A backend and a clock a test drives by hand: the engine's state machine in milliseconds.

``FakeBackend`` implements the ``Backend`` protocol with no processes and no
git: an attempt is a future the test ends (``exit``, ``lose``), preparing and
finishing can be held at a gate, adoption answers what the test says, and log
output arrives when the test says so (``output``). ``FakeClock`` fires the
engine's timers (timeouts, retry backoff) when the test moves it (``advance``).
The store is real (SQLite in a tmp folder), so each test also checks what the
ledger says.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mission_control.agents.report import AgentReport, write_report
from mission_control.engine.backend import (
    Adoption,
    AttemptLost,
    AttemptRequest,
    AttemptSink,
    BackendOptions,
    LeftBehind,
    Prepared,
    Started,
    Workspace,
    register_backend,
)
from mission_control.engine.finish import FinishItem, FinishOutcome, FinishRequest, WorkReady
from mission_control.engine.metrics import LogActivity
from mission_control.engine.supervisor import ExitStatus, TerminateResult
from mission_control.engine.tools import RenderedCommand, can_continue
from mission_control.errors import MissionControlError
from mission_control.plan.model import Plan, Workstream
from mission_control.store.logs import report_path


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time stands still until ``advance`` moves it, firing the timers that came due."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.t = start
        self._due: list[_Due] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Due:
        due = _Due(self.t + delay, next(self._seq), callback)
        heapq.heappush(self._due, due)
        return due

    def advance(self, seconds: float) -> None:
        end = self.t + seconds
        while self._due and self._due[0].at <= end:
            due = heapq.heappop(self._due)
            self.t = max(self.t, due.at)
            if not due.cancelled:
                due.callback()
        self.t = end

    @property
    def pending(self) -> int:
        return sum(1 for d in self._due if not d.cancelled)


class FakeAttempt:
    """A running attempt that ends when the test (or a stop) says so."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.create_time = 0.0
        self._paused = False
        self._ended: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self.terminated = False

    @property
    def paused(self) -> bool:
        return self._paused

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._ended)

    def pause(self) -> list[int]:
        self._paused = True
        return [self.pid]

    def resume(self) -> list[int]:
        self._paused = False
        return [self.pid]

    async def terminate(self, grace: float) -> TerminateResult:
        self.terminated = True
        self._paused = False
        self.end(ExitStatus(None, 15))
        return TerminateResult((self.pid,), (), (), ExitStatus(None, 15))

    def end(self, status: ExitStatus) -> None:
        if not self._ended.done():
            self._ended.set_result(status)

    def lose(self, detail: str) -> None:
        if not self._ended.done():
            self._ended.set_exception(AttemptLost(detail))


class FakeBackend:
    """The ``Backend`` protocol with no processes and no git (see the module docstring)."""

    name = "fake"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sink: AttemptSink | None = None
        self.prepare_gates: dict[str, asyncio.Event] = {}
        self.prepare_errors: dict[str, MissionControlError] = {}
        self.finish_gates: dict[str, asyncio.Event] = {}
        self.finish_outcomes: dict[str, FinishOutcome] = {}
        self.adoptions: dict[str, Adoption | None] = {}
        self.adopt_asked: dict[str, LeftBehind] = {}
        self.attempts: dict[str, FakeAttempt] = {}
        self.requests: dict[str, list[AttemptRequest]] = {}
        self.released: list[str] = []
        self.closed_keeping: bool | None = None
        self.exit_at_once: int | None = None
        """Every attempt ends with this exit code as soon as it starts (a plan's worth)."""
        self._pids = itertools.count(1000)
        self.log_sizes: dict[str, int] = {}

    async def open(self, plan: Plan, workstreams: list[Workstream], sink: AttemptSink) -> None:
        self.sink = sink

    async def close(self, *, keep: bool = False) -> None:
        self.closed_keeping = keep

    async def prepare(self, request: AttemptRequest) -> Prepared:
        task_id = request.ws.task_id
        self.requests.setdefault(task_id, []).append(request)
        gate = self.prepare_gates.get(task_id)
        if gate is not None:
            await _first(gate, request.stop)
            if not gate.is_set():
                raise MissionControlError(f"{task_id}: stopped before it started")
        if (err := self.prepare_errors.pop(task_id, None)) is not None:
            raise err
        path = self.root / task_id.replace("::", "-")
        follow_up = request.follow_up
        continues = follow_up is not None and can_continue(request.tool, follow_up.session_id)
        command = RenderedCommand(("fake-tool",), None, {"MC_FAKE": "1"}, None, continues)
        return Prepared(Workspace(path, request.ws.branch, "0" * 40), command)

    async def start(self, request: AttemptRequest, prepared: Prepared) -> Started:
        attempt = FakeAttempt(next(self._pids))
        self.attempts[request.ws.task_id] = attempt
        if self.exit_at_once is not None:
            attempt.end(ExitStatus(self.exit_at_once, None))
        return Started(attempt, None)

    async def adopt(self, request: AttemptRequest, left: LeftBehind) -> Adoption | None:
        self.adopt_asked[request.ws.task_id] = left
        return self.adoptions.get(request.ws.task_id)

    async def finish(self, request: FinishRequest) -> AsyncIterator[FinishItem]:
        task_id = request.ws.task_id
        if request.stop.is_set():
            yield FinishOutcome(False, "stopped during checks")
            return
        yield WorkReady()  # checked and committed: dependents may prepare
        gate = self.finish_gates.get(task_id)
        if gate is not None:  # held while it pushes
            await _first(gate, request.stop)
        if request.stop.is_set():
            yield FinishOutcome(False, "stopped while pushing")
            return
        yield self.finish_outcomes.get(task_id, FinishOutcome(True, "done"))

    async def release(self, task_id: str) -> None:
        self.released.append(task_id)

    def diff(self, ws: Workstream, workspace: Workspace) -> str:
        return f"diff of {ws.task_id}"

    # ------------------------------------------------------------ the test's hands

    def exit(self, task_id: str, code: int = 0) -> None:
        self.attempts[task_id].end(ExitStatus(code, None))

    def lose(self, task_id: str) -> None:
        self.attempts[task_id].lose(f"{task_id}: lost its machine")

    def report(self, task_id: str, report: AgentReport) -> None:
        """The attempt's relay wrote ``report`` (a real file), and a sampler tick saw it."""
        path = report_path(self.requests[task_id][-1].log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_report(path, report)
        assert self.sink is not None
        size = self.log_sizes.get(task_id, 0)  # the log itself did not grow
        self.sink.on_sample({}, {task_id: LogActivity(size, None, report)})

    def output(self, task_id: str, size: int) -> None:
        """The attempt's log has ``size`` bytes now (as a sampler tick would say)."""
        assert self.sink is not None
        self.log_sizes[task_id] = size
        self.sink.on_sample({}, {task_id: LogActivity(size, None)})


async def _first(*events: asyncio.Event | None) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events if e is not None]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def install(backend: FakeBackend) -> str:
    """Register ``backend`` under the name ``fake`` (for ``RunOptions(backend="fake")``)."""
    register_backend("fake", lambda _options: _check(backend, _options))
    return "fake"


def _check(backend: FakeBackend, options: BackendOptions) -> FakeBackend:
    return backend


__all__ = ["FakeAttempt", "FakeBackend", "FakeClock", "install"]
