"""The engine's side of the agents: their reports, their budgets, and messages to them.

An attempt whose tool has an adapter runs under the relay (``agents.relay``), which rewrites
the attempt's report as the agent works; the backend hands each new report over with its
samples. Here each one is recorded, published (``AgentReported``) and held against the
run's budget. When an attempt ends, its last report says whether the agent stopped for its
own budget, or ended asking the user something (``needs input``).

A message to a workstream's agent is kept in the ledger until it is handed over: to the
running agent through its inbox when its CLI takes input while it runs (the relay passes
it on), else as a new attempt that goes on with the agent's conversation once the current
one has ended (``FollowUp``; a tool that cannot continue gets it after its prompt).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

from ..agents.report import AgentReport, read_report, summarize_stream
from ..errors import SetupError
from ..plan.model import Price
from ..store.ledger import AGENT_FIELDS
from ..store.logs import inbox_path, report_path, stream_path
from ..store.private import make_private_dir, write_private_text
from ..store.records import AttemptRecord
from . import events as ev
from .finish_report import FinishReport
from .lifecycle import Lifecycle
from .states import ACTIVE, WsState
from .tools import FollowUp, can_continue

ANSWERABLE = frozenset(
    {
        WsState.SUCCEEDED,
        WsState.FAILED,
        WsState.TIMED_OUT,
        WsState.KILLED,
        WsState.INTERRUPTED,
        WsState.NEEDS_INPUT,
    }
)
"""Where a message starts a new attempt at once: the agent's last attempt has ended."""
_LATER = ACTIVE | {WsState.QUEUED}
"""Where a message waits for the attempt under way (or about to start) to end."""


class Conversation(FinishReport):
    _run_over_budget: str | None

    # ------------------------------------------------------------ reports

    async def _agent_reported(self, rt: Lifecycle, attempt: int, report: AgentReport) -> None:
        """Record the agent's report, tell the views, and hold the run to its budget."""
        known = rt.agent.reports.get(attempt)
        if known == report or (known is not None and known.ended and not report.ended):
            return  # the same, or an older word than the final one already read
        rt.agent.reports[attempt] = report
        fields = {name: getattr(report, name) for name in AGENT_FIELDS}
        await self._db(self.store.record_agent, self.run_id, rt.task_id, attempt, fields)
        tokens, cost = rt.agent.totals()
        self._publish(
            ev.AgentReported(
                self.run_id,
                rt.task_id,
                attempt,
                report.session_id,
                report.model,
                report.doing,
                report.needs_input,
                tokens,
                cost,
                self._clock.now(),
            )
        )
        if report.delivered:
            await self._mark_live(rt, attempt, report.delivered)
        self._check_run_budget()

    def _check_run_budget(self) -> None:
        if self._run_over_budget is not None:
            return
        tokens = 0
        costs: list[float] = []
        for other in self._rt.values():
            spent, cost = other.agent.totals()
            tokens += spent.total
            if cost is not None:
                costs.append(cost)
        reason = self.plan.budget.exceeded(sum(costs) if costs else None, tokens)
        if reason is not None:
            self._run_over_budget = f"run {reason}"
            message = f"run {reason}: no new attempt starts"
            self._spawn(self._db(self.store.add_note, self.run_id, message, self._clock.now()))
            self._publish(ev.EngineWarned(self.run_id, None, message, self._clock.now()))
            self._wake.set()

    async def _last_report(self, rt: Lifecycle) -> AgentReport | None:
        """The ended attempt's final report: the relay's, or made again from its raw stream
        when the relay was lost before its last word. None for a tool without an adapter."""
        tool = self.plan.tools[rt.ws.tool]
        run = rt.run
        if tool.events == "text" or run is None or run.log_path is None:
            return None
        log_path = run.log_path
        pricing = Price.table(self.plan.pricing)

        def read() -> AgentReport | None:
            report = read_report(report_path(log_path))
            if report is not None and report.ended:
                return report
            rebuilt = summarize_stream(tool.events, stream_path(log_path), pricing=pricing)
            if rebuilt is not None and report is not None:  # keep what only the relay knew
                rebuilt = _with_relay_facts(rebuilt, report)
            return rebuilt or report

        report = await asyncio.to_thread(read)
        if report is None:  # its files are elsewhere (a cluster node): its last word sent
            return rt.agent.reports.get(run.number)
        await self._agent_reported(rt, run.number, report)
        return report

    # ------------------------------------------------------------ messages

    async def _send_message(self, rt: Lifecycle, text: str) -> str:
        """Keep ``text`` for the workstream's agent and hand it over when it can be;
        what will happen to it, in words."""
        state = rt.state
        if not text.strip():
            raise SetupError(f"{rt.task_id}: the message is empty: write what the agent should do")
        if state not in ANSWERABLE and state not in _LATER and state is not WsState.PAUSED:
            raise SetupError(
                f"{rt.task_id} is {state.value}: a message goes to an agent that has started;"
                " change its prompt instead"
            )
        await self._db(self.store.add_message, self.run_id, rt.task_id, text, self._clock.now())
        rt.agent.messages_waiting = True
        return await self._deliver(rt)

    async def _deliver(self, rt: Lifecycle) -> str:
        """Hand the workstream's waiting messages over, if it can take them now."""
        waiting = await self._db(self.store.messages, self.run_id, waiting=True)
        mine = [m for m in waiting if m.task_id == rt.task_id and m.id not in rt.agent.inboxed]
        if not mine:
            rt.agent.messages_waiting = bool(rt.agent.inboxed)
            return "nothing waits for it"
        tool = self.plan.tools[rt.ws.tool]
        run = rt.run
        if rt.handle is not None and tool.live_input and run is not None and run.log_path:
            inbox = inbox_path(run.log_path)
            await asyncio.to_thread(_drop, inbox, [(m.id, m.text) for m in mine])
            rt.agent.inboxed.update(m.id for m in mine)
            return "handed to the running agent"
        if rt.busy or rt.state not in ANSWERABLE:
            return "it goes to the agent once its current attempt ends"
        text = "\n\n".join(m.text for m in mine)
        session = rt.agent.session_id
        rt.agent.follow_up = FollowUp(text, session, rt.agent.session_cost(session))
        rt.agent.follow_up_ids = tuple(m.id for m in mine)
        rt.held_until = 0.0
        rt.clear_stop()
        continues = can_continue(tool, rt.agent.session_id)
        how = "continuing its conversation" if continues else "with the message after its prompt"
        await self._set_state(rt.task_id, WsState.QUEUED, f"a new attempt, {how}")
        await self._unblock_dependents(rt.task_id)
        self._wake.set()
        if continues:
            return "a new attempt continues the agent's conversation with it"
        return (
            f"tool '{rt.ws.tool}' cannot continue a conversation: a new attempt gets the"
            " message after its prompt"
        )

    async def _follow_up_started(self, rt: Lifecycle, attempt: int, continues: bool) -> None:
        """The attempt carrying the follow-up started: its messages are handed over."""
        ids, rt.agent.follow_up_ids, rt.agent.follow_up = rt.agent.follow_up_ids, (), None
        how = "continued" if continues else "appended"
        for message_id in ids:
            await self._db(
                self.store.handle_message, self.run_id, message_id, attempt, how, self._clock.now()
            )
        if not continues:
            note = (
                f"tool '{rt.ws.tool}' cannot continue a conversation: your message was added"
                " after its prompt"
            )
            self._publish(ev.EngineWarned(self.run_id, rt.task_id, note, self._clock.now()))

    async def _mark_live(self, rt: Lifecycle, attempt: int, delivered: tuple[str, ...]) -> None:
        for name in delivered:
            with contextlib.suppress(ValueError):
                message_id = int(name)
                if message_id in rt.agent.inboxed:
                    rt.agent.inboxed.discard(message_id)
                    await self._db(
                        self.store.handle_message,
                        self.run_id,
                        message_id,
                        attempt,
                        "live",
                        self._clock.now(),
                    )

    async def _after_attempt_messages(self, rt: Lifecycle) -> None:
        """An attempt ended: messages its relay did not hand over wait for the next one."""
        run = rt.run
        if rt.agent.inboxed and run is not None and run.log_path is not None:
            await asyncio.to_thread(_take_back, inbox_path(run.log_path))
        rt.agent.inboxed.clear()

    def _restore_agent(self, rt: Lifecycle, attempts: list[AttemptRecord]) -> None:
        for a in attempts:
            rt.agent.reports[a.attempt] = AgentReport(**{f: getattr(a, f) for f in AGENT_FIELDS})


def _with_relay_facts(rebuilt: AgentReport, relay: AgentReport) -> AgentReport:
    return replace(rebuilt, over_budget=relay.over_budget, delivered=relay.delivered)


def _drop(inbox: Path, messages: list[tuple[int, str]]) -> None:
    """Put each message in the inbox for the relay: written aside, then renamed, so the
    relay never reads half of one."""
    make_private_dir(inbox)
    for message_id, text in messages:
        aside = inbox / f"{message_id}.part"
        write_private_text(aside, text)
        aside.rename(inbox / f"{message_id}.msg")


def _take_back(inbox: Path) -> None:
    """Remove what the relay never handed over: those messages go to the next attempt."""
    with contextlib.suppress(OSError):
        for left in inbox.glob("*.msg"):
            left.unlink()


__all__ = ["ANSWERABLE", "Conversation"]
