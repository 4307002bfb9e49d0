"""Recording and publishing what finishing hands back, and keeping forecasts two-sided.

A backend's ``finish`` yields results (``engine.finish.FinishItem``); the
engine consumes them one at a time, so each is in the store before finishing
goes on. Finishing asks for the conflict forecast (``ForecastDue``) once the branch
has its new head; the engine runs it against the phase's branches finished by
then. A forecast is recorded on both sides of each pair, and a
forecast that saw a newer base commit makes the phase's other finished branches
be forecast again against it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..errors import MissionControlError
from ..git import conflicts
from ..plan.model import Workstream
from . import events as ev
from .core import EngineCore
from .finish import (
    FinishItem,
    FinishOutcome,
    FinishRequest,
    ForecastDue,
    HeadCommitted,
    PullRequestOpened,
    StepDone,
    WorkDelivered,
    WorkReady,
    forecast,
)
from .lifecycle import Lifecycle
from .states import WsState


class FinishReport(EngineCore):
    async def _finish(self, rt: Lifecycle, request: FinishRequest) -> FinishOutcome:
        """Run the backend's finishing, recording and publishing each result as it comes.

        The conflict forecast runs beside the push and the pull request (it only advises),
        and is over before the outcome is told."""
        outcome = FinishOutcome(False, "finishing ended without an outcome")
        forecasts: list[asyncio.Task[None]] = []
        try:
            async for item in self.backend.finish(request):
                if isinstance(item, FinishOutcome):
                    outcome = item
                elif isinstance(item, ForecastDue):
                    forecasts.append(asyncio.ensure_future(self._forecast(rt, request.log_path)))
                else:
                    await self._take(rt, item, request.log_path)
        finally:
            if forecasts:
                await asyncio.gather(*forecasts, return_exceptions=True)
        return outcome

    async def _take(self, rt: Lifecycle, item: FinishItem, log_path: Path) -> None:
        task_id, now = rt.task_id, self._clock.now()
        if isinstance(item, StepDone):
            self._publish(
                ev.FinishStepDone(self.run_id, task_id, item.step, item.ok, item.detail, now)
            )
        elif isinstance(item, HeadCommitted):
            self._heard_head(rt, item.head, item.holds)
            await self._record_result(
                rt.ws,
                {
                    "head_commit": item.head,
                    "files_changed": item.files,
                    "insertions": item.insertions,
                    "deletions": item.deletions,
                },
            )
            self._publish_result(task_id, item, None)
        elif isinstance(item, PullRequestOpened):
            await self._record_result(rt.ws, {"pr_url": item.url})
            self._publish_result(task_id, item.head, item.url)
        elif isinstance(item, WorkReady):
            if item.head:
                self._heard_head(rt, item.head, item.holds)
            if rt.run is not None:
                rt.run.work_ready = True
            self._wake.set()
        elif isinstance(item, WorkDelivered):
            if rt.run is not None:
                rt.run.delivered = True
            self._notify_state_change()  # a dependent holding its tool for this may start
        elif isinstance(item, ForecastDue):
            await self._forecast(rt, log_path)

    def _heard_head(self, rt: Lifecycle, head: str, holds: str) -> None:
        """Finishing made ``head`` (on ``holds``, when it made the commit itself)."""
        rt.last_head = head
        if holds:
            self._made_on[head] = holds

    async def _forecast(self, rt: Lifecycle, log_path: Path) -> None:
        known = self._ancestry(rt.last_head) if rt.last_head else ()
        found = await forecast(rt.ws, log_path, self._finished_branches(rt.ws), known)
        if isinstance(found, StepDone):
            await self._take(rt, found, log_path)
            return
        await self._on_conflicts(rt, found.pairs)
        if found.base_head is not None:
            await self._on_base_forecast(rt.ws, found.base_ref, found.base_head)

    def _publish_result(self, task_id: str, head: HeadCommitted, pr_url: str | None) -> None:
        self._publish(
            ev.WorkstreamResultUpdated(
                self.run_id,
                task_id,
                head.head,
                head.files,
                head.insertions,
                head.deletions,
                pr_url,
                self._clock.now(),
            )
        )

    def _finished_branches(self, ws: Workstream) -> tuple[tuple[str, str, str], ...]:
        """(task id, branch, head) of the other finished workstreams of the phase, same
        repo: the head finishing made for those that succeeded, else "" (read from git)."""
        succeeded = WsState.SUCCEEDED
        return tuple(
            (
                other.ws.task_id,
                other.ws.branch,
                (other.state is succeeded and other.last_head) or "",
            )
            for other in self._phase_members(ws.phase_id)
            if (other.state is succeeded or other.state is WsState.FINISHING)
            and other.task_id != ws.task_id
            and other.ws.repo == ws.repo
        )

    def _phase_members(self, phase_id: str) -> list[Lifecycle]:
        return [self._rt[t] for t in self._phases.get(phase_id, ())]

    async def _on_conflicts(
        self, rt: Lifecycle, pairs: tuple[tuple[str, tuple[str, ...]], ...]
    ) -> None:
        """Record a forecast on both sides of each pair: the older branch hears of it too."""
        task_id = rt.task_id
        rt.conflicts = dict(pairs)
        await self._publish_conflicts(rt)
        for other_id, files in pairs:
            other = self._rt.get(other_id)
            if other is not None and other.conflicts.get(task_id) != files:
                other.conflicts[task_id] = files
                await self._publish_conflicts(other)
        # A pair that no longer conflicts is dropped on the other side too.
        for other in self._phase_members(rt.ws.phase_id):
            if other is not rt and task_id in other.conflicts and other.task_id not in rt.conflicts:
                del other.conflicts[task_id]
                await self._publish_conflicts(other)

    async def _on_base_forecast(self, ws: Workstream, base_ref: str, base_head: str) -> None:
        """A forecast used ``base_head``: forecast the phase's finished branches again
        against it if they last were against another commit (the base moved)."""
        self._rt[ws.task_id].forecast_base = base_head
        for other in self._phase_members(ws.phase_id):
            theirs = other.ws
            if (
                other.forecast_base == base_head
                or (theirs.repo, theirs.remote, theirs.base_branch)
                != (ws.repo, ws.remote, ws.base_branch)
                # A branch still finishing is left to its own forecast.
                or not (
                    other.state is WsState.SUCCEEDED
                    or (other.state is WsState.FINISHING and other.forecast_base is not None)
                )
            ):
                continue
            other.forecast_base = base_head  # tried once per base, also when it fails
            try:
                found = await asyncio.to_thread(
                    conflicts.forecast_conflicts, theirs.repo, theirs.branch, [], base_ref
                )
            except MissionControlError as err:
                self._publish(
                    ev.EngineWarned(self.run_id, theirs.task_id, str(err), self._clock.now())
                )
                continue
            key = f"base:{theirs.base_branch}"
            files = next((tuple(f) for ref, f in found if ref == base_ref), None)
            if other.conflicts.get(key) == files:
                continue
            if files is None:
                del other.conflicts[key]
            else:
                other.conflicts[key] = files
            await self._publish_conflicts(other)

    async def _publish_conflicts(self, rt: Lifecycle) -> None:
        pairs = tuple(rt.conflicts.items())
        await self._record_result(rt.ws, {"conflicts": [[o, list(f)] for o, f in pairs]})
        self._publish(ev.ConflictsForecast(self.run_id, rt.task_id, pairs, self._clock.now()))

    async def _record_result(self, ws: Workstream, fields: dict[str, Any]) -> None:
        await self._db(self.store.update_result, self.run_id, ws.task_id, **fields)


__all__ = ["FinishReport"]
