"""The user's commands: one table says where each applies and where it takes a workstream.

``COMMANDS`` has one row per command (pause, resume, kill, retry, fresh retry,
skip): the states it applies in, the state it leads to, and what to tell the
user from any other state. ``check_command`` is the one place a command is
refused; the engine then acts on the row (``Control``). Commands may come from
any thread or loop (the app, a CLI asking the driver): they run on the
engine's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import SetupError
from .attempts import Attempts
from .lifecycle import BranchRewrite, Lifecycle, StopReason
from .states import TERMINAL, WsState

S = WsState
_ALL = frozenset(WsState)


class Command(Enum):
    PAUSE = "pause"
    RESUME = "resume"
    KILL = "kill"
    RETRY = "retry"
    FRESH_RETRY = "fresh retry"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class CommandRule:
    applies_in: frozenset[WsState]
    target: WsState
    """Where it takes the workstream (through its attempt's stop when one is under way)."""
    refusal: str
    """Told from any other state: ``{task_id}`` and ``{state}`` filled in."""
    refusals: Mapping[WsState, str] = field(default_factory=dict)
    """A more helpful word for some of the other states."""
    needs_tool: bool = False
    """Acts on the running tool: refused while there is none."""
    needs_idle: bool = False
    """Refused while an attempt is under way (it would run twice)."""


_RETRY = CommandRule(
    frozenset(
        {S.FAILED, S.TIMED_OUT, S.KILLED, S.INTERRUPTED, S.SUCCEEDED, S.SKIPPED, S.NEEDS_INPUT}
    ),
    S.QUEUED,
    "{task_id} is {state}: kill it first to retry it",
    {S.BLOCKED: "{task_id} is blocked: retry or skip the dependency that failed"},
    needs_idle=True,
)

COMMANDS: Mapping[Command, CommandRule] = {
    Command.PAUSE: CommandRule(
        frozenset({S.RUNNING}),
        S.PAUSED,
        "{task_id} is {state}: only a running workstream pauses",
        needs_tool=True,
    ),
    Command.RESUME: CommandRule(
        frozenset({S.PAUSED}),
        S.RUNNING,
        "{task_id} is {state}: only a paused workstream resumes",
        needs_tool=True,
    ),
    Command.KILL: CommandRule(_ALL - TERMINAL, S.KILLED, "{task_id} is already {state}"),
    Command.RETRY: _RETRY,
    Command.FRESH_RETRY: _RETRY,
    Command.SKIP: CommandRule(
        _ALL - {S.SUCCEEDED, S.SKIPPED}, S.SKIPPED, "{task_id} is already {state}"
    ),
}


def check_command(command: Command, rt: Lifecycle) -> CommandRule:
    """The command's row, or SetupError with the one message for where the workstream is."""
    rule = COMMANDS[command]
    state = rt.state
    refused = (
        state not in rule.applies_in
        or (rule.needs_tool and rt.handle is None)
        or (rule.needs_idle and rt.busy)
    )
    if refused:
        text = rule.refusals.get(state, rule.refusal)
        raise SetupError(text.format(task_id=rt.task_id, state=state.value))
    return rule


class Control(Attempts):
    """``EngineControl``'s commands."""

    async def pause(self, task_id: str) -> None:
        await self._on_loop(self._command(Command.PAUSE, task_id))

    async def resume(self, task_id: str) -> None:
        await self._on_loop(self._command(Command.RESUME, task_id))

    async def kill(self, task_id: str) -> None:
        await self._on_loop(self._command(Command.KILL, task_id))

    async def skip(self, task_id: str) -> None:
        await self._on_loop(self._command(Command.SKIP, task_id))

    async def retry(self, task_id: str, fresh: bool = False) -> None:
        await self._on_loop(self._command(Command.FRESH_RETRY if fresh else Command.RETRY, task_id))

    async def send_message(self, task_id: str, text: str) -> str:
        """Give the workstream's agent a message (see ``conversation``); what becomes of it."""
        answer: list[str] = []

        async def send() -> None:
            answer.append(await self._send_message(self._get(task_id), text))

        await self._on_loop(send())
        return answer[0]

    async def check_messages(self) -> None:
        """Hand over the messages another mission-control left in the ledger (``continue``)."""
        await self._on_loop(self._check_messages())

    async def _check_messages(self) -> None:
        waiting = await self._db(self.store.messages, self.run_id, waiting=True)
        for task_id in dict.fromkeys(m.task_id for m in waiting):
            rt = self._rt.get(task_id)
            if rt is not None:
                rt.agent.messages_waiting = True
                await self._deliver(rt)

    async def cancel(self, kill: bool = False) -> None:
        await self._on_loop(self._cancel(kill))

    async def detach(self) -> None:
        """Stop supervising but leave every agent running; ``resume`` adopts them again."""
        await self._on_loop(self._detach())

    async def _on_loop(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a command on the engine's loop, whichever loop or thread asks."""
        loop = self._loop
        if loop is None or loop is asyncio.get_running_loop():
            await coro
            return
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        await asyncio.wrap_future(future)

    async def _command(self, command: Command, task_id: str) -> None:
        rt = self._get(task_id)
        check_command(command, rt)
        if command is Command.PAUSE:
            await self._pause(rt)
        elif command is Command.RESUME:
            await self._resume(rt)
        elif command is Command.KILL:
            await self._stop(rt, StopReason.KILL)
        elif command is Command.SKIP:
            await self._skip(rt)
        else:
            await self._retry(rt, fresh=command is Command.FRESH_RETRY)

    async def _pause(self, rt: Lifecycle) -> None:
        handle = rt.handle
        assert handle is not None
        await asyncio.to_thread(handle.pause)
        self._disarm(rt)
        await self._set_state(rt.task_id, WsState.PAUSED, "paused by the user")

    async def _resume(self, rt: Lifecycle) -> None:
        handle = rt.handle
        assert handle is not None
        await asyncio.to_thread(handle.resume)
        rt.output.last_output_at = self._clock.now()
        await self._set_state(rt.task_id, WsState.RUNNING, f"pid {handle.pid}")
        self._arm(rt)

    async def _skip(self, rt: Lifecycle) -> None:
        rt.held_until = 0.0
        if rt.busy:
            await self._stop(rt, StopReason.SKIP)
            return
        await self._set_state(rt.task_id, WsState.SKIPPED, "skipped by the user")
        await self._unblock_dependents(rt.task_id)
        self._wake.set()

    async def _retry(self, rt: Lifecycle, *, fresh: bool) -> None:
        if fresh:
            rt.rewrite = BranchRewrite.RESET_NEXT
        elif rt.rewrite is BranchRewrite.RESET_NEXT:
            rt.rewrite = BranchRewrite.KEPT  # a fresh retry asked before, not started
        rt.losses = 0
        rt.held_until = 0.0
        rt.clear_stop()
        await self._set_state(rt.task_id, WsState.QUEUED, "retry (fresh)" if fresh else "retry")
        await self._unblock_dependents(rt.task_id)
        self._wake.set()

    async def _cancel(self, kill: bool) -> None:
        self._cancelling = True
        stops = []
        for rt in self._rt.values():
            if rt.busy:
                if rt.stop is None:
                    rt.request_stop(StopReason.CANCEL)
                if rt.run is not None and rt.run.handle is not None:
                    stops.append(self._terminate(rt, 0.0 if kill else None))
            elif rt.state is WsState.QUEUED:
                await self._set_state(rt.task_id, WsState.PENDING, "run cancelled")
        self._wake.set()
        await asyncio.gather(*stops)

    async def _detach(self) -> None:
        self._detaching = True
        for rt in self._rt.values():
            if rt.run is not None and not rt.run.recorded:
                rt.run.give_up.set()  # an attempt still waiting for room lets go
        self._wake.set()
        self._notify_state_change()


__all__ = ["COMMANDS", "Command", "CommandRule", "Control", "check_command"]
