"""The engine's state machine through a fake backend and a fake clock: no processes, no sleeps.

Every command from every state (parametrised over ``control.COMMANDS``), retries
with backoff, timeouts, stalls, lost machines, dependencies that fail or are
skipped, dependents prepared while their dependency finishes, and resume with
each adoption answer. The store is real; time moves only when a test says so.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mission_control.agents.report import AgentReport
from mission_control.engine import events as ev
from mission_control.engine.backend import EndedUnwatched, StillRunning
from mission_control.engine.control import COMMANDS, Command
from mission_control.engine.engine import Engine, RunOptions
from mission_control.engine.finish import FinishOutcome
from mission_control.engine.lifecycle import ALLOWED, BranchRewrite, IllegalTransition, Lifecycle
from mission_control.engine.states import TERMINAL, WsState
from mission_control.engine.supervisor import ExitStatus
from mission_control.errors import SetupError
from mission_control.plan.model import Budget, Plan
from mission_control.store.runs import RunStore
from tests.engine.engine_helpers import Recorder, write_plan, ws
from tests.engine.fake_backend import FakeAttempt, FakeBackend, FakeClock, install

S = WsState
T = "P::T"
D = "P::D"


@pytest.fixture(scope="module")
def plan_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("plans") / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "base"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    return repo


_PLANS: dict[str, Plan] = {}


def _plan(repo: Path, workstreams: list[dict[str, Any]], limit: int) -> Plan:
    """Loading a plan reads its repository with git: each shape is loaded once."""
    key = json.dumps([workstreams, limit], sort_keys=True)
    if key not in _PLANS:
        folder = repo.parent / f"plan{len(_PLANS)}"
        folder.mkdir()
        _PLANS[key] = write_plan(folder, repo, [("P", limit, workstreams)])
    return _PLANS[key]


class Run:
    """One engine on the fake backend and clock, running as a task of the test's loop."""

    def __init__(self, tmp: Path, repo: Path, workstreams: list[dict[str, Any]], **options: Any):
        self.tmp = tmp
        self.backend = FakeBackend(tmp / "worktrees")
        self.clock = FakeClock()
        limit = options.pop("limit", 4)
        self.plan = _plan(repo, workstreams, limit)
        opts: dict[str, Any] = {
            "backend": install(self.backend),
            "existing_branches": "continue",
            "linger": True,
            "retry_backoff_seconds": 5.0,
            **options,
        }
        self.engine = Engine(
            self.plan, state_dir=tmp.parent / "state", options=RunOptions(**opts), clock=self.clock
        )
        self.rec = Recorder(self.engine)
        self.task: asyncio.Task[bool] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.engine.run())

    async def state(self, task_id: str, *states: WsState) -> None:
        await self.rec.until(lambda: self.now(task_id) in states, timeout=10)

    async def running(self, task_id: str) -> None:
        await self.state(task_id, S.RUNNING)
        await self.rec.until(lambda: task_id in self.backend.attempts, timeout=10)

    def now(self, task_id: str) -> WsState:
        """The state the views were last told of."""
        return self.rec.states.get(task_id, S.PENDING)

    async def end(self) -> bool:
        assert self.task is not None
        if not self.task.done():
            await self.engine.cancel()
        result = await asyncio.wait_for(self.task, 10)
        bugs = [d for t in self.engine._rt for d in self.rec.details(t) if "internal error" in d]
        assert not bugs, bugs
        return result


@pytest.fixture
async def make(tmp_path: Path, plan_repo: Path) -> AsyncIterator[Any]:
    runs: list[Run] = []

    def build(workstreams: list[dict[str, Any]], **options: Any) -> Run:
        folder = tmp_path / f"run{len(runs)}"
        folder.mkdir()
        run = Run(folder, plan_repo, workstreams, **options)
        runs.append(run)
        return run

    yield build
    for run in runs:
        if run.task is not None and not run.task.done():
            await run.end()


# ------------------------------------------------------------ reaching each state

AGENT_T = {"id": "T", "name": "agent T", "tool": "claude", "prompt": "do it"}
"""A workstream whose tool has an adapter: its attempts report through the relay's file."""
ASKS = AgentReport(
    adapter="claude-stream-json", session_id="s-1", needs_input="asks: which port?", ended=True
)


async def reach(make: Any, state: WsState) -> Run:
    """A run whose workstream ``P::T`` is in ``state``, idle or held there."""
    if state is S.INTERRUPTED:
        return await _interrupted(make)
    dep = [ws("D"), ws("T", deps=["D"])]
    alone = [ws("T")]
    if state in (S.PENDING, S.SKIPPED, S.BLOCKED):
        run = make(dep)
    elif state is S.QUEUED:
        run = make([ws("D"), ws("T")], limit=1)
    elif state is S.NEEDS_INPUT:
        run = make([AGENT_T])
    else:
        run = make(alone)
    if state is S.PREPARING:
        run.backend.prepare_gates[T] = asyncio.Event()
    if state is S.FINISHING:
        run.backend.finish_gates[T] = asyncio.Event()
    run.start()
    if state in (S.PENDING, S.SKIPPED, S.BLOCKED, S.QUEUED):
        await run.running(D)
        if state is S.SKIPPED:
            await run.engine.skip(T)
        if state is S.BLOCKED:
            run.backend.exit(D, 1)
        if state is S.QUEUED:
            await run.state(T, S.QUEUED)
    elif state is not S.PREPARING:
        await run.running(T)
        if state is S.PAUSED:
            await run.engine.pause(T)
        elif state in (S.FINISHING, S.SUCCEEDED):
            run.backend.exit(T, 0)
        elif state is S.FAILED:
            run.backend.exit(T, 1)
        elif state is S.TIMED_OUT:
            run.clock.advance(121)
        elif state is S.KILLED:
            await run.engine.kill(T)
        elif state is S.NEEDS_INPUT:
            run.backend.report(T, ASKS)
            run.backend.exit(T, 0)
    await run.state(T, state)
    return run


async def _interrupted(make: Any) -> Run:
    """Resume after a detach: T's agent is gone, and it waits for D (whose agent lives)."""
    first = make([ws("D"), ws("T")])
    first.start()
    await first.running(D)
    await first.running(T)
    await first.engine.detach()
    await first.end()
    run = make([ws("D"), ws("T", deps=["D"])], run_id=first.engine.run_id)
    run.backend.adoptions[D] = StillRunning(FakeAttempt(4242))
    run.backend.adoptions[T] = None
    run.start()
    await run.state(T, S.INTERRUPTED)
    return run


# ------------------------------------------------------------ every command, every state

_RESULT = {
    Command.PAUSE: (S.PAUSED,),
    Command.RESUME: (S.RUNNING,),
    Command.KILL: (S.KILLED,),
    Command.SKIP: (S.SKIPPED,),
    Command.RETRY: (S.QUEUED,),
    Command.FRESH_RETRY: (S.QUEUED,),
}


@pytest.mark.parametrize("state", list(WsState), ids=lambda s: s.value)
@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.value.replace(" ", "_"))
async def test_every_command_from_every_state(make: Any, command: Command, state: WsState) -> None:
    run = await reach(make, state)
    rule = COMMANDS[command]
    seen = len(run.rec.transitions(T))
    asked = len(run.backend.requests.get(T, []))
    call = {
        Command.PAUSE: lambda: run.engine.pause(T),
        Command.RESUME: lambda: run.engine.resume(T),
        Command.KILL: lambda: run.engine.kill(T),
        Command.SKIP: lambda: run.engine.skip(T),
        Command.RETRY: lambda: run.engine.retry(T),
        Command.FRESH_RETRY: lambda: run.engine.retry(T, fresh=True),
    }[command]
    if state not in rule.applies_in:
        with pytest.raises(SetupError) as err:
            await call()
        text = rule.refusals.get(state, rule.refusal).format(task_id=T, state=state.value)
        assert str(err.value) == text
        assert run.now(T) is state  # a refused command changes nothing
        await run.end()
        return
    await call()
    await run.rec.until(lambda: any(s in _RESULT[command] for s in run.rec.transitions(T)[seen:]))
    if command is Command.FRESH_RETRY and state in (S.SKIPPED, S.INTERRUPTED):
        # It waits for its dependency: its next attempt will start afresh.
        assert run.engine._rt[T].rewrite is BranchRewrite.RESET_NEXT
    elif command is Command.FRESH_RETRY:
        await run.rec.until(lambda: len(run.backend.requests.get(T, [])) > asked)
        assert run.backend.requests[T][-1].fresh is True
    await run.end()


def test_the_table_covers_every_state_and_its_moves_are_states() -> None:
    assert set(ALLOWED) == set(WsState)
    for moves in ALLOWED.values():
        assert moves <= set(WsState)
    for state in TERMINAL - {S.BLOCKED}:
        assert S.QUEUED in ALLOWED[state]  # every ended workstream can be retried


def test_a_move_the_table_does_not_list_raises(plan_repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, plan_repo, [("P", 1, [ws("T")])])
    life = Lifecycle(plan.workstreams[0])
    assert life.move(S.PREPARING) is S.PENDING
    assert life.move(S.PREPARING) is None  # already there: nothing to do
    with pytest.raises(IllegalTransition, match="preparing -> succeeded"):
        life.move(S.SUCCEEDED)


# ------------------------------------------------------------ retries, timeouts, stalls


async def test_a_failure_is_retried_after_its_backoff_on_the_clock(make: Any) -> None:
    run = make([ws("T", retries=1)])
    run.start()
    await run.running(T)
    first = run.backend.attempts[T]
    run.backend.exit(T, 1)
    await run.state(T, S.QUEUED)
    assert run.rec.details(T)[-1] == "tool 'shell' exited 1; retry 1/1 in 5s"
    run.clock.advance(4.9)
    await asyncio.sleep(0)
    assert run.now(T) is S.QUEUED  # still backing off
    run.clock.advance(0.2)
    await run.rec.until(lambda: run.backend.attempts[T] is not first)
    await run.running(T)
    run.backend.exit(T, 1)  # no retry left
    await run.state(T, S.FAILED)
    await run.end()


async def test_killing_a_retry_that_backs_off_ends_it_at_once(make: Any) -> None:
    run = make([ws("T", retries=1)], linger=False)
    run.start()
    await run.running(T)
    run.backend.exit(T, 1)
    await run.state(T, S.QUEUED)
    await run.engine.kill(T)
    await run.state(T, S.KILLED)
    # The run ends without the backoff's timer: nothing is held any more.
    assert await asyncio.wait_for(asyncio.shield(run.task), 10) is False  # type: ignore[arg-type]
    assert len(run.backend.requests[T]) == 1


async def test_a_timeout_holds_still_while_paused(make: Any) -> None:
    run = make([ws("T")])  # timeout_minutes: 2
    run.start()
    await run.running(T)
    run.clock.advance(100)
    await run.engine.pause(T)
    run.clock.advance(1000)
    assert run.now(T) is S.PAUSED
    await run.engine.resume(T)
    run.clock.advance(19)
    assert run.now(T) is S.RUNNING
    run.clock.advance(2)
    await run.state(T, S.TIMED_OUT)
    assert run.rec.details(T)[-1] == "timed out after 2m"
    await run.end()


@pytest.mark.parametrize(("on_stall", "ends"), [("kill", S.KILLED), ("retry", S.QUEUED)])
async def test_a_quiet_tool_is_stalled(make: Any, on_stall: str, ends: WsState) -> None:
    run = make([ws("T", stall_minutes=1, on_stall=on_stall, retries=1)])
    run.start()
    await run.running(T)
    run.backend.output(T, 10)
    run.clock.advance(61)
    run.backend.output(T, 10)  # nothing new for a minute
    await run.state(T, ends)
    stalls = [e for e in run.rec.events if isinstance(e, ev.WorkstreamStalled)]
    assert stalls and stalls[0].stalled
    if on_stall == "retry":
        assert run.rec.details(T)[-1] == "no output for 60s; retry 1/1 in 5s"
    else:  # said as what happened, not as the user's doing
        assert run.rec.details(T)[-1] == "killed: no output for 60s (on_stall: kill)"
    await run.end()


async def test_an_agent_report_is_a_sign_of_life(make: Any) -> None:
    """A silent log with a relay still reporting (the agent's stream grew) is not a stall."""
    run = make([{**AGENT_T, "stall_minutes": 1, "on_stall": "kill"}])
    run.start()
    await run.running(T)
    run.backend.output(T, 10)
    for lines in range(1, 4):
        run.clock.advance(50)
        run.backend.output(T, 10)
        run.backend.report(T, AgentReport(adapter="claude-stream-json", lines=lines))
        await run.rec.until(
            lambda n=lines: sum(isinstance(e, ev.AgentReported) for e in run.rec.events) == n
        )
    assert run.now(T) is S.RUNNING
    assert not [e for e in run.rec.events if isinstance(e, ev.WorkstreamStalled)]
    await run.end()


async def test_a_lost_attempt_starts_again_then_fails(make: Any) -> None:
    run = make([ws("T")])
    run.start()
    for n in range(1, 5):
        await run.running(T)
        attempt = run.backend.attempts[T]
        run.backend.lose(T)
        if n <= 3:
            await run.rec.until(lambda a=attempt: run.backend.attempts.get(T) is not a)
            assert f"starting it again ({n}/3)" in " ".join(run.rec.details(T))
    await run.state(T, S.FAILED)
    assert run.rec.details(T)[-1].endswith("(4 times in a row): retry it by hand")
    await run.end()


# ------------------------------------------------------------ dependencies


async def test_a_failed_dependency_blocks_and_skipping_it_unblocks(make: Any) -> None:
    run = make([ws("D"), ws("T", deps=["D"]), ws("U", deps=["T"])])
    run.start()
    await run.running(D)
    run.backend.exit(D, 1)
    await run.state(T, S.BLOCKED)
    await run.state("P::U", S.BLOCKED)
    await run.engine.skip(D)
    await run.running(T)  # a skipped dependency counts as done
    run.backend.exit(T, 0)
    await run.running("P::U")
    await run.end()


async def test_a_dependent_prepares_while_its_dependency_finishes(make: Any) -> None:
    run = make([ws("D"), ws("T", deps=["D"])])
    run.backend.finish_gates[D] = asyncio.Event()
    run.start()
    await run.running(D)
    run.backend.exit(D, 0)
    await run.state(T, S.PREPARING)  # D's work is committed; D still pushes
    assert run.now(D) is S.FINISHING
    await run.rec.until(lambda: len(run.backend.requests.get(T, [])) == 1)
    assert T not in run.backend.attempts  # its tool waits for D's success
    run.backend.finish_gates[D].set()
    await run.running(T)
    await run.end()


async def test_a_dependency_failing_while_it_pushes_sets_its_prepared_dependent_back(
    make: Any,
) -> None:
    run = make([ws("D"), ws("T", deps=["D"])])
    run.backend.finish_gates[D] = asyncio.Event()
    run.backend.finish_outcomes[D] = FinishOutcome(False, "push refused")
    run.start()
    await run.running(D)
    run.backend.exit(D, 0)
    await run.state(T, S.PREPARING)
    run.backend.finish_gates[D].set()
    await run.state(T, S.BLOCKED)
    assert T not in run.backend.attempts  # never started on undelivered work
    assert "waiting: dependency P::D is failed" in run.rec.details(T)
    await run.end()


# ------------------------------------------------------------ resume


async def test_resume_watches_finishes_or_restarts_each_attempt(make: Any) -> None:
    first = make([ws("A"), ws("B"), ws("C")])
    first.start()
    for t in ("P::A", "P::B", "P::C"):
        await first.running(t)
    await first.engine.detach()
    await first.end()
    assert first.backend.closed_keeping is True

    run = make([ws("A"), ws("B"), ws("C")], run_id=first.engine.run_id)
    survivor = FakeAttempt(777)
    run.backend.adoptions["P::A"] = StillRunning(survivor)
    run.backend.adoptions["P::B"] = EndedUnwatched(ExitStatus(0, None))
    run.backend.adoptions["P::C"] = None
    run.start()
    await run.state("P::B", S.SUCCEEDED)  # finished as if we had been there
    await run.running("P::C")  # started again
    assert run.backend.requests["P::C"][-1].attempt == 2
    assert "adopted pid 777" in run.rec.details("P::A")
    assert run.now("P::A") is S.RUNNING
    assert run.backend.adopt_asked["P::A"].ended is False
    survivor.end(ExitStatus(0, None))
    await run.state("P::A", S.SUCCEEDED)
    await run.end()


# ------------------------------------------------------------ agents


def _reported(run: Run, name: str, value: Any) -> bool:
    """The ledger's latest attempt of T holds ``value`` in column ``name``."""
    attempts = run.engine.store.attempts(run.engine.run_id, T)
    return bool(attempts) and getattr(attempts[-1], name, None) == value


async def test_an_agent_that_ends_with_a_question_needs_input(make: Any) -> None:
    run = make([AGENT_T, {**AGENT_T, "id": "U", "depends_on": ["T"]}])
    run.start()
    await run.running(T)
    run.backend.report(T, ASKS)
    run.backend.exit(T, 0)
    await run.state(T, S.NEEDS_INPUT)
    assert run.rec.details(T)[-1] == "asks: which port?"
    assert run.now("P::U") is S.PENDING  # its dependent waits: neither blocked nor started
    assert "P::U" not in run.backend.attempts
    assert run.engine.snapshot().workstreams[T].needs_input == "asks: which port?"
    await run.end()


async def test_an_agent_over_its_budget_fails_with_the_reason_and_no_retry(make: Any) -> None:
    run = make([{**AGENT_T, "retries": 2}])
    run.start()
    await run.running(T)
    over = "over budget: $0.0300 spent, max_cost_usd is 0.01"
    run.backend.report(
        T, AgentReport(adapter="claude-stream-json", cost_usd=0.03, over_budget=over, ended=True)
    )
    run.backend.exit(T, 143)
    await run.state(T, S.FAILED)
    assert run.rec.details(T)[-1] == over
    assert len(run.backend.requests[T]) == 1
    assert _reported(run, "over_budget", over)
    await run.end()


async def test_a_run_over_its_budget_starts_no_new_attempt(
    make: Any, tmp_path: Path, plan_repo: Path
) -> None:
    doc = [AGENT_T, {**AGENT_T, "id": "U"}]
    run = make(doc, limit=1)
    run.engine.plan = run.plan.model_copy(update={"budget": Budget(max_cost_usd=0.05)})
    run.start()
    await run.running(T)
    run.backend.report(T, AgentReport(adapter="claude-stream-json", cost_usd=0.06))
    await run.rec.until(
        lambda: any(
            isinstance(e, ev.EngineWarned) and "run over budget" in e.message
            for e in run.rec.events
        )
    )
    run.backend.exit(T, 0)
    await run.state(T, S.SUCCEEDED)
    for _ in range(3):
        await asyncio.sleep(0)
    assert "P::U" not in run.backend.attempts
    assert run.now("P::U") in (S.PENDING, S.QUEUED)
    await run.end()
    with RunStore(run.tmp.parent / "state") as store:  # `status` says it too
        ledger = store.read_run(run.engine.run_id)
    assert ledger is not None
    assert ledger.notes == (
        "run over budget: $0.0600 spent, max_cost_usd is 0.05: no new attempt starts",
    )


async def test_a_message_continues_the_conversation_in_a_new_attempt(make: Any) -> None:
    run = make([AGENT_T])
    run.start()
    await run.running(T)
    run.backend.report(T, ASKS)
    run.backend.exit(T, 0)
    await run.state(T, S.NEEDS_INPUT)
    said = await run.engine.send_message(T, "port 8080")
    assert said == "a new attempt continues the agent's conversation with it"
    await run.rec.until(lambda: len(run.backend.requests[T]) == 2)
    follow_up = run.backend.requests[T][-1].follow_up
    assert follow_up is not None
    assert (follow_up.message, follow_up.session_id) == ("port 8080", "s-1")
    await run.running(T)
    run.backend.exit(T, 0)
    await run.state(T, S.SUCCEEDED)
    (message,) = run.engine.store.messages(run.engine.run_id)
    assert (message.attempt, message.how) == (2, "continued")
    await run.end()


async def test_a_message_to_a_busy_agent_waits_for_its_attempt_to_end(make: Any) -> None:
    run = make([ws("T")])  # a plain tool: no live input, no conversation to continue
    run.start()
    await run.running(T)
    said = await run.engine.send_message(T, "also fix the docs")
    assert said == "it goes to the agent once its current attempt ends"
    assert not run.engine.store.messages(run.engine.run_id)[0].handled_at
    run.backend.exit(T, 0)
    await run.rec.until(lambda: len(run.backend.requests[T]) == 2)
    assert run.backend.requests[T][-1].follow_up is not None
    await run.running(T)
    warned = [e.message for e in run.rec.events if isinstance(e, ev.EngineWarned)]
    assert any("cannot continue a conversation" in w for w in warned), warned
    (message,) = run.engine.store.messages(run.engine.run_id)
    assert message.how == "appended"
    await run.end()


async def test_a_message_to_a_workstream_that_never_started_is_refused(make: Any) -> None:
    run = make([ws("D"), ws("T", deps=["D"])])
    run.start()
    await run.running(D)
    with pytest.raises(SetupError, match="P::T is pending: a message goes to an agent"):
        await run.engine.send_message(T, "hi")
    with pytest.raises(SetupError, match="the message is empty"):
        await run.engine.send_message(D, "  ")
    await run.end()
