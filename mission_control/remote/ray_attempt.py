"""The engine's handle on one attempt running in a Ray actor on a cluster node.

Its log streams back in chunks (``protocol.Chunk``) that are appended to the
attempt's local log file, with the events the node made and its process
samples, which go to the engine through the backend's ``AttemptSink``. Calls
to the actor go through the backend (``ActorCalls``), which turns Ray's errors
into ours (a lost actor is ``AttemptLost``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

from ..engine.backend import AttemptLost, AttemptSink
from ..engine.metrics import LogActivity
from ..engine.supervisor import ExitStatus, TerminateResult
from ..store.private import append_private
from .protocol import Chunk, NodeEnded, NodeStarted

LOST = (RayActorError, WorkerCrashedError)
"""Ray's errors for an actor (or its node) that went away."""


class ActorCalls(Protocol):
    async def call(self, task_id: str, ref: Any) -> Any:
        """Await a remote call; Ray's errors become ours."""
        ...

    def call_blocking(self, task_id: str, ref: Any) -> Any:
        """``call`` for a worker thread."""
        ...


async def awaitable(ref: Any) -> Any:
    return await ref


class RayAttempt:
    """The engine's handle on an attempt running in an actor; its log streams in as it grows."""

    def __init__(
        self,
        backend: ActorCalls,
        task_id: str,
        actor: Any,
        started: NodeStarted,
        log_path: Path,
        sink: AttemptSink,
        offset: int,
        *,
        lost: str | None = None,
    ) -> None:
        self.pid = started.pid
        self.create_time = started.create_time
        self._backend = backend
        self._task_id = task_id
        self._actor = actor
        self._log_path = log_path
        self._sink = sink
        self._paused = False
        self._position = offset
        """How far into the node's log this machine's copy goes."""
        self._events = 0
        self._progress = asyncio.Event()
        self._pump_ended = False
        self._lost = lost
        """Set for an attempt whose tool its node stopped: ``wait`` reports it lost."""
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mc-ray-log")
        self._pump = asyncio.ensure_future(self._run_pump())

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        self._paused = paused

    async def wait(self) -> ExitStatus:
        ended: NodeEnded = await self._backend.call(self._task_id, self._actor.wait.remote())
        await self.drained(ended.log_size, None)
        if ended.report is not None:
            activity = LogActivity(ended.log_size, None, ended.report)
            self._sink.on_sample({}, {self._task_id: activity})
        if self._lost is not None:
            raise AttemptLost(self._lost)
        return ended.status

    def pause(self) -> list[int]:
        pids: list[int] = self._backend.call_blocking(self._task_id, self._actor.pause.remote())
        self._paused = True
        return pids

    def resume(self) -> list[int]:
        pids: list[int] = self._backend.call_blocking(self._task_id, self._actor.resume.remote())
        self._paused = False
        return pids

    async def terminate(self, grace: float) -> TerminateResult:
        try:
            result: TerminateResult = await self._backend.call(
                self._task_id, self._actor.terminate.remote(grace)
            )
        except AttemptLost:
            return TerminateResult((), (), (), None)  # the actor and its tree are gone
        self._paused = False
        return result

    async def drained(self, log_size: int, events: int | None) -> None:
        """Wait until the local log holds ``log_size`` bytes and ``events`` events came."""
        while not self._pump_ended and (
            self._position < log_size or (events is not None and self._events < events)
        ):
            self._progress.clear()
            await self._progress.wait()

    def stop_pump(self) -> None:
        self._pump.cancel()
        self._writer.shutdown(wait=False)

    async def _run_pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for ref in self._actor.stream.remote(self._position):
                chunk: Chunk = await ref
                if chunk.data:
                    await loop.run_in_executor(
                        self._writer, append_private, self._log_path, chunk.data
                    )
                    self._position = chunk.offset + len(chunk.data)
                for event in chunk.events:
                    self._sink.publish(event)
                self._events = chunk.events_total
                if chunk.sample is not None:
                    activity = LogActivity(chunk.log_size, None, chunk.report)
                    self._sink.on_sample({self._task_id: chunk.sample}, {self._task_id: activity})
                self._progress.set()
        except (*LOST, RayTaskError):
            pass  # ``wait`` reports the loss
        finally:
            self._pump_ended = True
            self._progress.set()


__all__ = ["LOST", "ActorCalls", "RayAttempt", "awaitable"]
